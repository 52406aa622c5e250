//! The audit log: who did what, appended and never changed.

use super::{Db, DbError};

impl Db {
    pub async fn audit(&self, username: Option<&str>, action: &str, detail: &str) -> Result<(), DbError> {
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO audit_log (at, username, action, detail) VALUES ($1, $2, $3, $4)")
            .bind(self.clock.now())
            .bind(username)
            .bind(action)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One line of the audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub username: Option<String>,
    pub action: String,
    pub detail: String,
}

/// Lines of the audit log one page shows.
pub const AUDIT_PAGE: i64 = 100;

impl Db {
    /// A page of the audit log, newest first, before line `before` (`None`: from the newest),
    /// of one user and one action if given; with the count of lines matching.
    pub async fn audit_page(
        &self,
        username: Option<&str>,
        action: Option<&str>,
        before: Option<i64>,
    ) -> Result<(Vec<AuditEntry>, i64), DbError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE ($1 IS NULL OR username = $2) AND ($3 IS NULL OR action = $4)",
        )
        .bind(username)
        .bind(username)
        .bind(action)
        .bind(action)
        .fetch_one(&self.pool)
        .await?;
        let rows: Vec<(i64, i64, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, at, username, action, detail FROM audit_log
             WHERE ($1 IS NULL OR username = $2) AND ($3 IS NULL OR action = $4) AND ($5 IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
        )
        .bind(username)
        .bind(username)
        .bind(action)
        .bind(action)
        .bind(before)
        .bind(before)
        .bind(AUDIT_PAGE)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows
            .into_iter()
            .map(|(id, at, username, action, detail)| AuditEntry { id, at, username, action, detail })
            .collect();
        Ok((entries, total))
    }
}
