//! The HTTP layer: the axum application (state, routes, middleware, serving) and its handlers.

pub mod admin;
pub mod api;
pub mod attachments;
pub mod audit;
pub mod error;
pub mod idle;
pub mod signin;
pub mod tls;
pub mod web;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tower_http::trace::TraceLayer;

use crate::http::idle::IdleListener;
use crate::store::Db;

/// Largest request body of a route that says nothing else: forms and small JSON requests.
pub const DEFAULT_BODY_BYTES: usize = 64 * 1024;
/// A sync request (compressed; a phone sends at most 512 KiB of changes at a time, but a first
/// push of a large record goes whole).
pub const SYNC_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A template or a unit list, published through the API or the admin pages.
pub const PUBLISH_BODY_BYTES: usize = 2 * 1024 * 1024;
/// One chunk of an attachment upload (the phone sends 64 KiB chunks).
pub const CHUNK_BODY_BYTES: usize = 4 * diaban_core::protocol::CHUNK_BYTES;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Mark session cookies `Secure`. Browsers accept them on http://localhost too.
    pub secure_cookies: bool,
    /// Take the client's address from the last `X-Forwarded-For` entry (behind a reverse
    /// proxy that sets it), not from the connection.
    pub trust_forwarded_for: bool,
    pub signin: std::sync::Arc<crate::http::signin::SignInGuard>,
    /// The oldest phone library (`x-diaban-client`) the API serves; older ones are told to
    /// update before any data moves.
    pub min_client: Option<ClientVersion>,
}

/// A phone library's version: major, minor, patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientVersion(pub u64, pub u64, pub u64);

impl std::str::FromStr for ClientVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.').map(|p| p.parse::<u64>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok(ClientVersion(a, b, c)),
            _ => Err(format!("{s:?} is not a version (major.minor.patch)")),
        }
    }
}

impl AppState {
    pub fn new(db: Db, secure_cookies: bool) -> AppState {
        AppState { db, secure_cookies, trust_forwarded_for: false, signin: Default::default(), min_client: None }
    }
}

/// The largest body a route takes: every route's limit, in one place.
pub fn body_limit(path: &str) -> usize {
    if path == diaban_core::protocol::SYNC_PATH {
        SYNC_BODY_BYTES
    } else if path.starts_with(diaban_core::protocol::ATTACHMENTS_PATH) {
        CHUNK_BODY_BYTES
    } else if path.starts_with("/api/v1/admin/") || path == "/admin/templates" || path == "/admin/units" {
        PUBLISH_BODY_BYTES
    } else {
        DEFAULT_BODY_BYTES
    }
}

/// The page's Content-Security-Policy: nothing inline, nothing from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every page of the web: HSTS (browsers keep to HTTPS for a year once they reached
/// the server over it; ignored over plain HTTP), the CSP, no framing, no referrer, no
/// sniffing. Not on the phones' API, where every byte counts on 2G and no browser reads it.
async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    if api {
        return response;
    }
    use axum::http::HeaderValue;
    use axum::http::header::{
        CONTENT_SECURITY_POLICY as CSP, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
        X_FRAME_OPTIONS,
    };
    let headers = response.headers_mut();
    headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    headers.insert(CSP, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Turns away a phone library older than the server accepts, on every API route, before the
/// request is read: 426 with the "please update" error the phone shows.
async fn check_client(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    if let (true, Some(min)) = (api, state.min_client) {
        let version = request
            .headers()
            .get(diaban_core::protocol::CLIENT_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<ClientVersion>().ok());
        if version.is_none_or(|v| v < min) {
            return crate::http::error::ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                diaban_core::protocol::codes::UPGRADE_REQUIRED,
                format!(
                    "Ứng dụng đã cũ, hãy cập nhật (máy chủ cần bản {}.{}.{} trở lên). This app is too old for the server; please update it.",
                    min.0, min.1, min.2
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Holds every request body to its route's [`body_limit`]: a declared length over it is
/// refused before anything is read (413, made uniform by [`crate::http::error::uniform_errors`]),
/// and a body read past it fails its extractor with 413.
async fn limit_bodies(request: Request, next: Next) -> Response {
    let limit = body_limit(request.uri().path());
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(request.map(|body| Body::new(http_body_util::Limited::new(body, limit)))).await
}

/// The client's address: the connection's peer, or behind a trusted reverse proxy the last
/// address it added to `X-Forwarded-For`. Unspecified when neither is known.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .trust_forwarded_for
            .then(|| parts.headers.get_all("x-forwarded-for").iter().next_back())
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddress(forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]))))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::http::api::router())
        .merge(crate::http::web::router())
        .merge(crate::http::admin::router())
        // The limits are `limit_bodies`'s, one per route.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(limit_bodies))
        .layer(axum::middleware::from_fn_with_state(state.clone(), check_client))
        .layer(axum::middleware::from_fn(crate::http::error::uniform_errors))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, over HTTPS when `tls` is given, closing connections silent
/// for `idle` (see [`crate::http::idle`]). Prints the bound address first, so a caller that asked for
/// port 0 learns the port.
pub async fn serve(
    state: AppState,
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    idle: std::time::Duration,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            println!("Địa bàn listening on https://{addr}");
            // `tap_io` gives the connections their peer address (ConnectInfo) as for plain TCP.
            let listener = crate::http::tls::TlsListener::new(listener, config)?;
            let listener = IdleListener::new(listener, idle).tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
        }
        None => {
            println!("Địa bàn listening on http://{addr}");
            let listener = IdleListener::new(listener, idle).tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
        }
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
