//! HTTP transport for the device: JSON over `POST`, with the server's error bodies mapped
//! to [`TransportError`]. The sync logic itself lives in [`crate::sync`] and knows nothing
//! of HTTP, so other transports can carry the same messages later.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the server cannot be reached: {0}")]
    Unreachable(String),
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

pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
}

impl HttpTransport {
    pub fn new(base_url: &str) -> Result<HttpTransport, TransportError> {
        let client = reqwest::Client::builder()
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

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, TransportError> {
        let response = request.send().await.map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| TransportError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .map_err(|_| TransportError::BadResponse(format!("status {status} without an error body")))?;
            return Err(TransportError::Http { status: status.as_u16(), code: detail.code, message: detail.message });
        }
        Ok(bytes.to_vec())
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
        let response = request.send().await.map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| TransportError::Unreachable(e.to_string()))?;
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
