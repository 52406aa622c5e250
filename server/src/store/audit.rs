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
