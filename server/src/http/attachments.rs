//! Attachment transfer: chunked, resumable uploads and ranged downloads of photos and files,
//! content-addressed by SHA-256.
//!
//! - `GET  /api/v1/attachments/{sha256}/status` → how many bytes of the caller's own upload
//!   the server holds (nothing about anyone else's);
//! - `PUT  /api/v1/attachments/{sha256}?offset=&size=&content_type=` with the next chunk of the
//!   caller's upload; the offset must be exactly what the server holds of it, so a retried
//!   chunk is refused rather than stored twice, and the client resumes from the status. Every
//!   user uploads an attachment whole, even one the server holds: a pushed record may refer
//!   only to attachments its pusher uploaded (`sync` checks);
//! - `GET  /api/v1/attachments/{sha256}?offset=&length=` → a range, only through a record the
//!   caller may read that refers to it (`access`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use diaban_core::protocol::{AttachmentStatus, CHUNK_BYTES, MAX_ATTACHMENT_BYTES};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::domain::access::Access;
use crate::http::AppState;
use crate::http::api::ApiQuery;
use crate::http::error::ApiError;
use crate::store::AuthDevice;

fn check_sha(sha256: &str) -> Result<(), ApiError> {
    if sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(ApiError::bad_request("an attachment is named by the lowercase hex SHA-256 of its bytes"))
    }
}

/// What `username` has uploaded of an attachment (nothing of anyone else's).
async fn upload_of(state: &AppState, sha256: &str, username: &str) -> Result<Option<AttachmentStatus>, ApiError> {
    let row = sqlx::query(
        "SELECT u.size, u.complete,
                COALESCE((SELECT SUM(LENGTH(data)) FROM upload_chunks c WHERE c.sha256 = u.sha256 AND c.username = u.username), 0) AS received
         FROM attachment_uploads u WHERE u.sha256 = $1 AND u.username = $2",
    )
    .bind(sha256)
    .bind(username)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|r| {
        let (size, complete) = (r.get::<i64, _>("size") as u64, r.get::<i64, _>("complete") != 0);
        AttachmentStatus { size, received: if complete { size } else { r.get::<i64, _>("received") as u64 }, complete }
    }))
}

/// The caller's own upload of an attachment: how far it has come. Says nothing of uploads by
/// anyone else, nor whether the server holds the content.
pub async fn status(
    State(state): State<AppState>,
    device: AuthDevice,
    Path(sha256): Path<String>,
) -> Result<Json<AttachmentStatus>, ApiError> {
    check_sha(&sha256)?;
    let none = AttachmentStatus { size: 0, received: 0, complete: false };
    Ok(Json(upload_of(&state, &sha256, &device.user.username).await?.unwrap_or(none)))
}

#[derive(Deserialize)]
pub struct UploadQuery {
    offset: u64,
    size: u64,
    content_type: String,
}

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// One chunk of the caller's upload. Every user uploads an attachment whole, even one the
/// server holds already: a record may refer only to what its pusher uploaded.
pub async fn upload(
    State(state): State<AppState>,
    device: AuthDevice,
    Path(sha256): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Bytes,
) -> Result<Json<AttachmentStatus>, ApiError> {
    check_sha(&sha256)?;
    if q.size == 0 || q.size > MAX_ATTACHMENT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an attachment holds 1 to {MAX_ATTACHMENT_BYTES} bytes"),
        ));
    }
    if body.is_empty()
        || body.len() > CHUNK_BYTES
        || q.offset.checked_add(body.len() as u64).is_none_or(|end| end > q.size)
        || q.content_type.len() > 100
    {
        return Err(ApiError::bad_request(format!("a chunk holds 1 to {CHUNK_BYTES} bytes within the attachment")));
    }
    let user = device.user.username.clone();
    let current = upload_of(&state, &sha256, &user).await?;
    if let Some(s) = &current {
        if s.complete {
            return Ok(Json(s.clone()));
        }
        if s.size != q.size {
            return Err(conflict("size_mismatch", format!("this attachment has {} bytes", s.size)));
        }
    }
    let received = current.as_ref().map_or(0, |s| s.received);
    if q.offset != received {
        return Err(conflict(
            "offset_mismatch",
            format!("the server holds {received} bytes of this attachment; send from there"),
        ));
    }
    let (sha, now) = (sha256.clone(), state.db.clock.now());
    let stored = state
        .db
        .write(async |tx| {
            sqlx::query(
                "INSERT INTO attachment_uploads (sha256, username, content_type, size, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (sha256, username) DO NOTHING",
            )
            .bind(&sha)
            .bind(&user)
            .bind(&q.content_type)
            .bind(q.size as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // The same chunk sent twice at once (two phones of one user): the second is told
            // where the upload stands, not stored again.
            let inserted = sqlx::query(
                "INSERT INTO upload_chunks (sha256, username, \"offset\", data) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sha256, username, \"offset\") DO NOTHING",
            )
            .bind(&sha)
            .bind(&user)
            .bind(q.offset as i64)
            .bind(body.as_ref())
            .execute(&mut *tx)
            .await?;
            Ok(inserted.rows_affected() == 1)
        })
        .await?;
    if !stored {
        return Err(conflict("offset_mismatch", "this chunk is being stored already; ask for the status".into()));
    }
    if q.offset + (body.len() as u64) == q.size {
        finish(&state, &sha256, &user, &q).await?;
        state.db.audit(Some(&user), "attachment_uploaded", &sha256).await?;
    }
    let none = AttachmentStatus { size: q.size, received: 0, complete: false };
    Ok(Json(upload_of(&state, &sha256, &user).await?.unwrap_or(none)))
}

/// The last chunk is in: the whole is hashed outside the write lock; if it matches its name
/// the content is kept (once per hash) and the user's upload is complete, else the upload is
/// thrown away.
async fn finish(state: &AppState, sha256: &str, user: &str, q: &UploadQuery) -> Result<(), ApiError> {
    let chunks: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM upload_chunks WHERE sha256 = $1 AND username = $2 ORDER BY \"offset\"")
            .bind(sha256)
            .bind(user)
            .fetch_all(&state.db.pool)
            .await?;
    let mut hasher = Sha256::new();
    chunks.iter().for_each(|c| hasher.update(c));
    let matches = hex::encode(hasher.finalize()) == sha256;
    let (sha, now) = (sha256.to_owned(), state.db.clock.now());
    state
        .db
        .write(async |tx| {
            if matches {
                sqlx::query(
                    "INSERT INTO attachments (sha256, content_type, size, complete, created_at) VALUES ($1, $2, $3, 1, $4)
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(&sha)
                .bind(&q.content_type)
                .bind(q.size as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO attachment_chunks (sha256, \"offset\", data)
                     SELECT sha256, \"offset\", data FROM upload_chunks WHERE sha256 = $1 AND username = $2
                     ON CONFLICT (sha256, \"offset\") DO NOTHING",
                )
                .bind(&sha)
                .bind(user)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE attachment_uploads SET complete = 1 WHERE sha256 = $1 AND username = $2")
                    .bind(&sha)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("DELETE FROM attachment_uploads WHERE sha256 = $1 AND username = $2")
                    .bind(&sha)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM upload_chunks WHERE sha256 = $1 AND username = $2")
                .bind(&sha)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await?;
    if matches { Ok(()) } else { Err(ApiError::bad_request("the uploaded bytes do not match their SHA-256")) }
}

/// Whether `username` has uploaded each of these attachments whole (for a push that refers to
/// them).
pub async fn uploaded_all(
    conn: &mut sqlx::AnyConnection,
    username: &str,
    shas: &[&str],
) -> Result<bool, crate::store::DbError> {
    let list = serde_json::Value::from(shas.to_vec()).to_string();
    let done: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM json_each($1) s JOIN attachment_uploads u
           ON u.sha256 = s.value AND u.username = $2 AND u.complete = 1",
    )
    .bind(list)
    .bind(username)
    .fetch_one(&mut *conn)
    .await?;
    Ok(done as usize == shas.len())
}

#[derive(Deserialize)]
pub struct RangeQuery {
    offset: u64,
    length: u64,
}

pub async fn download(
    State(state): State<AppState>,
    device: AuthDevice,
    Path(sha256): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Vec<u8>, ApiError> {
    check_sha(&sha256)?;
    let access = Access::of(&state.db, &device.user).await?;
    let size: Option<i64> = sqlx::query_scalar("SELECT size FROM attachments WHERE sha256 = $1 AND complete = 1")
        .bind(&sha256)
        .fetch_optional(&state.db.pool)
        .await?;
    // Not referred to by a record the caller may read, or not there: the same answer.
    let (true, Some(size)) = (access.attachment(&state.db, &sha256).await?, size) else {
        return Err(ApiError::not_found("attachment"));
    };
    let size = size as u64;
    let length = q.length.min(CHUNK_BYTES as u64);
    if q.offset >= size {
        return Err(ApiError::bad_request("offset past the end of the attachment"));
    }
    let rows = sqlx::query("SELECT \"offset\", data FROM attachment_chunks WHERE sha256 = $1 ORDER BY \"offset\"")
        .bind(&sha256)
        .fetch_all(&state.db.pool)
        .await?;
    let (start, end) = (q.offset, q.offset.saturating_add(length).min(size));
    let mut out = Vec::with_capacity((end - start) as usize);
    for r in &rows {
        let offset = r.get::<i64, _>(0) as u64;
        let data: Vec<u8> = r.get(1);
        let (from, to) = (start.max(offset), end.min(offset + data.len() as u64));
        if from < to {
            out.extend_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
        }
    }
    Ok(out)
}
