//! The axum application: state, routes, middleware, and serving.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

use crate::db::Db;

/// Largest request body accepted (a sync batch of photos travels separately).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Mark session cookies `Secure`. Browsers accept them on http://localhost too.
    pub secure_cookies: bool,
    pub logins: std::sync::Arc<crate::auth::LoginLimiter>,
}

impl AppState {
    pub fn new(db: Db, secure_cookies: bool) -> AppState {
        AppState { db, secure_cookies, logins: Default::default() }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::api::router())
        .merge(crate::web::router())
        .merge(crate::admin::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM. Prints the bound address first, so a caller that asked
/// for port 0 learns the port.
pub async fn serve(state: AppState, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("Địa bàn listening on http://{addr}");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown()).await?;
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
