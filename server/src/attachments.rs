//! Attachment transfer: chunked, resumable uploads and ranged downloads of photos and files,
//! content-addressed by SHA-256.
//!
//! - `GET  /api/v1/attachments/{sha256}/status` → how many bytes the server holds;
//! - `PUT  /api/v1/attachments/{sha256}?offset=&size=&content_type=` with the next chunk; the
//!   offset must be exactly what the server holds, so a retried chunk is refused rather than
//!   stored twice, and the client resumes from the status;
//! - `GET  /api/v1/attachments/{sha256}?offset=&length=` → a range, only for attachments that
//!   a record in the caller's units refers to.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use diaban_core::protocol::{AttachmentStatus, CHUNK_BYTES, MAX_ATTACHMENT_BYTES};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::api::ApiQuery;
use crate::app::AppState;
use crate::db::AuthDevice;
use crate::error::ApiError;

fn check_sha(sha256: &str) -> Result<(), ApiError> {
    if sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(ApiError::bad_request("an attachment is named by the lowercase hex SHA-256 of its bytes"))
    }
}

async fn status_of(state: &AppState, sha256: &str) -> Result<Option<AttachmentStatus>, ApiError> {
    let row = sqlx::query(
        "SELECT a.size, a.complete, COALESCE((SELECT SUM(LENGTH(data)) FROM attachment_chunks c WHERE c.sha256 = a.sha256), 0) AS received
         FROM attachments a WHERE a.sha256 = $1",
    )
    .bind(sha256)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|r| AttachmentStatus {
        size: r.get::<i64, _>("size") as u64,
        received: r.get::<i64, _>("received") as u64,
        // Stored as 0/1 (an integer on both databases).
        complete: r.get::<i64, _>("complete") != 0,
    }))
}

pub async fn status(
    State(state): State<AppState>,
    _device: AuthDevice,
    Path(sha256): Path<String>,
) -> Result<Json<AttachmentStatus>, ApiError> {
    check_sha(&sha256)?;
    Ok(Json(status_of(&state, &sha256).await?.unwrap_or(AttachmentStatus { size: 0, received: 0, complete: false })))
}

#[derive(Deserialize)]
pub struct UploadQuery {
    offset: u64,
    size: u64,
    content_type: String,
}

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
    {
        return Err(ApiError::bad_request(format!("a chunk holds 1 to {CHUNK_BYTES} bytes within the attachment")));
    }
    let current = status_of(&state, &sha256).await?;
    if let Some(s) = &current {
        if s.complete {
            return Ok(Json(s.clone()));
        }
        if s.size != q.size {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "size_mismatch",
                format!("this attachment has {} bytes", s.size),
            ));
        }
    }
    let received = current.as_ref().map_or(0, |s| s.received);
    if q.offset != received {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the server holds {received} bytes of this attachment; send from there"),
        ));
    }
    let sha = sha256.clone();
    let complete = state
        .db
        .write(async |tx| {
            sqlx::query("INSERT INTO attachments (sha256, content_type, size, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT(sha256) DO NOTHING")
                .bind(&sha)
                .bind(&q.content_type)
                .bind(q.size as i64)
                .bind(state.db.clock.now())
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO attachment_chunks (sha256, \"offset\", data) VALUES ($1, $2, $3)")
                .bind(&sha)
                .bind(q.offset as i64)
                .bind(body.as_ref())
                .execute(&mut *tx)
                .await?;
            if q.offset + (body.len() as u64) < q.size {
                return Ok(false);
            }
            // The last chunk: the whole must match its name, or it is thrown away.
            let chunks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM attachment_chunks WHERE sha256 = $1 ORDER BY \"offset\"")
                .bind(&sha)
                .fetch_all(&mut *tx)
                .await?;
            let mut hasher = Sha256::new();
            chunks.iter().for_each(|c| hasher.update(c));
            if hex::encode(hasher.finalize()) == sha {
                sqlx::query("UPDATE attachments SET complete = 1 WHERE sha256 = $1").bind(&sha).execute(&mut *tx).await?;
                Ok(true)
            } else {
                sqlx::query("DELETE FROM attachment_chunks WHERE sha256 = $1").bind(&sha).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM attachments WHERE sha256 = $1").bind(&sha).execute(&mut *tx).await?;
                Err(crate::db::DbError::Invalid("the uploaded bytes do not match their SHA-256".into()))
            }
        })
        .await?;
    if complete {
        state.db.audit(Some(&device.user.username), "attachment_uploaded", &sha256).await?;
    }
    Ok(Json(status_of(&state, &sha256).await?.unwrap_or(AttachmentStatus {
        size: q.size,
        received: 0,
        complete: false,
    })))
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
    let scope = state.db.unit_scope(&device.user.unit_code).await?;
    let referenced: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM record_attachments ra JOIN records r ON r.id = ra.record_id
         WHERE ra.sha256 = $1 AND r.unit_code IN (SELECT value FROM json_each($2)) LIMIT 1",
    )
    .bind(&sha256)
    .bind(serde_json::Value::from(scope).to_string())
    .fetch_optional(&state.db.pool)
    .await?;
    let status = status_of(&state, &sha256).await?.filter(|s| s.complete);
    // Not referenced in scope, or not complete: the same answer, so nothing leaks.
    let (Some(_), Some(status)) = (referenced, status) else { return Err(ApiError::not_found("attachment")) };
    let length = q.length.min(CHUNK_BYTES as u64);
    if q.offset >= status.size {
        return Err(ApiError::bad_request("offset past the end of the attachment"));
    }
    let rows = sqlx::query("SELECT \"offset\", data FROM attachment_chunks WHERE sha256 = $1 ORDER BY \"offset\"")
        .bind(&sha256)
        .fetch_all(&state.db.pool)
        .await?;
    let (start, end) = (q.offset, (q.offset + length).min(status.size));
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
