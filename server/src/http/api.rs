//! The JSON API devices talk to: login, sync, templates, health.

use axum::body::Bytes;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use diaban_core::limits;
use diaban_core::protocol::{self, LoginRequest, LoginResponse, SyncRequest, codes};
use diaban_core::template::SharedChoiceList;
use diaban_core::wire::{self, WireError};
use diaban_core::{Role, Template, protocol::Account};
use tokio::time::Instant;

use crate::domain::access::Access;
use crate::domain::auth;
use crate::http::error::ApiError;
use crate::http::signin::{self, Channel, SignInError};
use crate::http::{AppState, ClientAddress};
use crate::store::{AuthDevice, Wipe};

/// `Json` whose rejections are our JSON errors.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// `Query` whose rejections are our JSON errors.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) =
            Query::<T>::from_request_parts(parts, state).await.map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(ApiQuery(value))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(protocol::LOGIN_PATH, post(login))
        .route(protocol::SYNC_PATH, post(sync))
        .route(protocol::SYNC_V1_PATH, post(sync_v1))
        .route(protocol::WATCH_PATH, get(watch))
        .route(protocol::REFRESH_PATH, post(refresh))
        .route(protocol::WIPED_PATH, post(wiped))
        .route("/api/v1/templates/{id}", get(template))
        .route(
            "/api/v1/attachments/{sha256}",
            axum::routing::put(crate::http::attachments::upload).get(crate::http::attachments::download),
        )
        .route("/api/v1/attachments/{sha256}/status", get(crate::http::attachments::status))
        .route("/api/v1/admin/templates", post(publish_template))
        .route("/api/v1/admin/choice-lists", post(publish_choice_list))
        .route("/health", get(health))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if automerge::ActorId::try_from(req.actor_id.as_str()).is_err() || !(16..=64).contains(&req.actor_id.len()) {
        return Err(ApiError::bad_request("actor_id must be a hex Automerge actor id"));
    }
    limits::check_chars("the device name", &req.device_name, limits::MAX_DEVICE_NAME_CHARS)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let user = signin::sign_in(&state.db, &state.signin, &req.username, &req.password, address, Channel::Device)
        .await
        .map_err(|e| match e {
            SignInError::TooLong(e) => ApiError::bad_request(e.to_string()),
            SignInError::Wait { seconds } => too_many_attempts(seconds),
            SignInError::InvalidCredentials => invalid_credentials(),
            SignInError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
            SignInError::Db(e) => internal(e),
        })?;
    let token = auth::new_token().map_err(|e| internal(e.to_string()))?;
    let device_id = state
        .db
        .register_device(&user, &req.device_name, &req.actor_id, &auth::token_hash(&token))
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::forbidden(
                "device_revoked",
                "this device was revoked or belongs to another user; reinstall the app",
            )
        })?;
    state.db.audit(Some(&user.username), "device_login", &device_id).await.map_err(internal)?;
    let expires_at = state.db.token_expiry(&device_id).await?;
    Ok(Json(LoginResponse {
        expires_at,
        token,
        device_id,
        account: Account {
            username: user.username,
            display_name: user.display_name,
            role: user.role,
            unit_code: user.unit_code,
            unit_name: user.unit_name,
        },
    }))
}

/// A binary sync exchange (`docs/sync-protocol.md`): the version byte is the handshake.
async fn sync(State(state): State<AppState>, device: AuthDevice, body: Bytes) -> Result<Response, ApiError> {
    let request: SyncRequest = wire::decode(&body).map_err(|e| match e {
        WireError::Version(v) => upgrade_required(v),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let response = crate::domain::sync::sync(&state.db, &device, request).await?;
    // A deactivated device's unsent changes were taken one last time: now it wipes.
    if device.wipe.is_some() {
        return Err(wipe_order());
    }
    let body = wire::encode(&response)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, protocol::SYNC_CONTENT_TYPE)], body).into_response())
}

#[derive(serde::Deserialize)]
struct WatchQuery {
    cursor: i64,
    #[serde(default)]
    wait: u64,
    /// The device's reach token: a changed account or scope answers at once.
    #[serde(default)]
    reach: Option<u64>,
}

/// How often a watch looks again without being woken: for writers outside the server
/// processes (the admin command on a SQLite file), and at the device's account and scope.
const RECHECK: Duration = Duration::from_secs(5);

/// A long poll: answers once something after the device's cursor is committed in its scope
/// (woken by this node's commits and, on PostgreSQL, every node's NOTIFY), or at the deadline.
/// Holds no database connection while it waits.
async fn watch(
    State(state): State<AppState>,
    device: AuthDevice,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> Result<Json<protocol::WatchResponse>, ApiError> {
    let deadline = Instant::now() + Duration::from_secs(q.wait.min(protocol::MAX_WATCH_SECS));
    if let Some(known) = q.reach
        && !crate::domain::sync::reach_is_current(&state.db, &device, known).await?
    {
        return Ok(Json(protocol::WatchResponse { changed: true }));
    }
    let mut commits = state.db.commits();
    let mut cursor = q.cursor;
    let mut account_checked = Instant::now();
    loop {
        // An administrator may change the account or scope (or revoke the device) during the
        // wait, without a commit to the change log: looked at again every few seconds.
        if let Some(known) = q.reach
            && account_checked.elapsed() >= RECHECK
        {
            account_checked = Instant::now();
            let current = match state.db.device_by_token(&device.token_hash).await? {
                Some(current) => current,
                // Revoked or expired: the sync that follows is told.
                None => return Ok(Json(protocol::WatchResponse { changed: true })),
            };
            if !crate::domain::sync::reach_is_current(&state.db, &current, known).await? {
                return Ok(Json(protocol::WatchResponse { changed: true }));
            }
        }
        // Seen before the check: a commit landing during the check still wakes the wait.
        commits.borrow_and_update();
        let latest = state.db.latest_seq().await?;
        if latest > cursor {
            if crate::domain::sync::has_changes(&state.db, &device, cursor).await? {
                return Ok(Json(protocol::WatchResponse { changed: true }));
            }
            // Nothing up to `latest` is for this device (sequences commit in order): a later
            // wake looks only at what comes after.
            cursor = latest;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Json(protocol::WatchResponse { changed: false }));
        }
        let _ = tokio::time::timeout(left.min(RECHECK), commits.changed()).await;
    }
}

/// Apps from before protocol 2 sync here; they are told to update.
async fn sync_v1() -> ApiError {
    upgrade_required(1)
}

fn upgrade_required(version: u8) -> ApiError {
    ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        codes::UPGRADE_REQUIRED,
        format!(
            "Ứng dụng đã cũ, hãy cập nhật (giao thức {version}; máy chủ dùng {}). This app is too old for the server; please update it.",
            protocol::PROTOCOL_VERSION
        ),
    )
}

/// A template the device's user may read; a restricted one not granted to them is answered as
/// one that is not published.
async fn template(
    State(state): State<AppState>,
    device: AuthDevice,
    Path(id): Path<String>,
) -> Result<Json<Template>, ApiError> {
    let access = Access::of(&state.db, &device.user).await?;
    let template = if access.template(&id) { state.db.template(&id, None).await.map_err(internal)? } else { None };
    template.map(Json).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, codes::UNKNOWN_TEMPLATE, format!("template {id:?} is not published"))
    })
}

/// The answer to a publication: what is now published.
#[derive(serde::Serialize)]
struct Published {
    id: String,
    version: u32,
    /// False when this exact version was already published.
    new: bool,
}

async fn publish_template(
    State(state): State<AppState>,
    device: AuthDevice,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    require_admin(&device)?;
    let template: Template = serde_json::from_value(body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes::INVALID_TEMPLATE, e.to_string()))?;
    let (new, template) = state.db.publish_template(template).await?;
    state
        .db
        .audit(Some(&device.user.username), "publish_template", &format!("{} v{}", template.id, template.version))
        .await?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Published { id: template.id, version: template.version, new })))
}

async fn publish_choice_list(
    State(state): State<AppState>,
    device: AuthDevice,
    ApiJson(list): ApiJson<SharedChoiceList>,
) -> Result<StatusCode, ApiError> {
    require_admin(&device)?;
    state.db.publish_choice_list(&list).await?;
    state.db.audit(Some(&device.user.username), "publish_choice_list", &list.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_admin(device: &AuthDevice) -> Result<(), ApiError> {
    if device.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(codes::FORBIDDEN, "only an admin may publish templates"))
    }
}

/// A new token for a device whose token is still valid; the old one stops working.
async fn refresh(State(state): State<AppState>, device: AuthDevice) -> Result<Json<protocol::TokenResponse>, ApiError> {
    let token = auth::new_token().map_err(|e| internal(e.to_string()))?;
    let expires_at = state.db.refresh_token(&device.device_id, &auth::token_hash(&token)).await?;
    Ok(Json(protocol::TokenResponse { token, expires_at }))
}

/// The answer to a device an admin ordered wiped.
fn wipe_order() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::WIPE,
        "this device was taken out of service: its data is erased now. Thiết bị đã bị thu hồi: dữ liệu trên máy được xóa.",
    )
}

/// What a device an admin ordered wiped may still do: a deactivated one sends its unsent
/// records and attachments one last time; any may confirm the wipe. Everything else is
/// answered with the order.
fn wipe_allows(wipe: Wipe, path: &str) -> bool {
    path == protocol::WIPED_PATH
        || (wipe == Wipe::Deactivated && (path == protocol::SYNC_PATH || path.starts_with(protocol::ATTACHMENTS_PATH)))
}

/// The device confirms it erased its store: its token stops working, and the admin page
/// shows when.
async fn wiped(State(state): State<AppState>, device: AuthDevice) -> Result<StatusCode, ApiError> {
    state.db.confirm_wipe(&device.device_id).await?;
    state.db.audit(Some(&device.user.username), "device_wiped", &device.device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn too_many_attempts(seconds: u64) -> ApiError {
    ApiError {
        retry_after: Some(seconds),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::TOO_MANY_ATTEMPTS,
            format!("too many wrong passwords; try again in {seconds} seconds"),
        )
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, codes::INVALID_CREDENTIALS, "wrong username or password")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; nothing was changed")
}

impl FromRequestParts<AppState> for AuthDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let device = state
            .db
            .device_by_token(&auth::token_hash(token))
            .await
            .map_err(internal)?
            .ok_or_else(ApiError::unauthorized)?;
        match device.wipe {
            Some(wipe) if !wipe_allows(wipe, parts.uri.path()) => Err(wipe_order()),
            _ => Ok(device),
        }
    }
}
