//! Answers changed offline on an approved record, proposed and decided by a reviewer.

use super::{Db, DbError};
use sqlx::{AnyConnection, Row};

/// Answers changed offline on an approved record, waiting for a reviewer.
#[derive(Clone, Debug)]
pub struct Amendment {
    pub id: i64,
    pub record_id: String,
    pub username: String,
    pub changes: Vec<u8>,
    pub proposed_at: i64,
    pub status: String,
}

impl Db {
    /// Keeps a device's refused edits of an approved record as a proposed amendment (once per
    /// record and heads) and returns its status: `proposed`, `accepted` or `rejected`.
    pub async fn propose_amendment(
        tx: &mut AnyConnection,
        record_id: &str,
        device_id: &str,
        username: &str,
        changes: &[u8],
        heads: &[String],
        at: i64,
    ) -> Result<String, DbError> {
        let heads = serde_json::to_string(heads).map_err(|e| DbError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO amendments (record_id, device_id, username, changes, heads, proposed_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (record_id, heads) DO NOTHING",
        )
        .bind(record_id)
        .bind(device_id)
        .bind(username)
        .bind(changes)
        .bind(&heads)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(sqlx::query_scalar("SELECT status FROM amendments WHERE record_id = $1 AND heads = $2")
            .bind(record_id)
            .bind(&heads)
            .fetch_one(&mut *tx)
            .await?)
    }

    /// A record's amendments, newest first.
    pub async fn amendments(&self, record_id: &str) -> Result<Vec<Amendment>, DbError> {
        let rows = sqlx::query(
            "SELECT id, record_id, username, changes, proposed_at, status FROM amendments WHERE record_id = $1 ORDER BY id DESC",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Amendment {
                id: r.get("id"),
                record_id: r.get("record_id"),
                username: r.get("username"),
                changes: r.get("changes"),
                proposed_at: r.get("proposed_at"),
                status: r.get("status"),
            })
            .collect())
    }

    /// Marks a proposed amendment accepted or rejected; false if it was not proposed.
    pub async fn decide_amendment(
        tx: &mut AnyConnection,
        id: i64,
        record_id: &str,
        status: &str,
        by: &str,
        at: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE amendments SET status = $1, decided_by = $2, decided_at = $3 WHERE id = $4 AND record_id = $5 AND status = 'proposed'",
        )
        .bind(status)
        .bind(by)
        .bind(at)
        .bind(id)
        .bind(record_id)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
