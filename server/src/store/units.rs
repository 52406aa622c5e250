//! Administrative units: the tree, a unit's subtree (a user's scope), the communes in it.

use super::{Db, DbError};
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
}

impl Db {
    pub async fn create_unit(&self, unit: &Unit) -> Result<(), DbError> {
        if unit.code.is_empty() || !unit.code.chars().all(|c| c.is_ascii_digit()) {
            return Err(DbError::Invalid(format!("unit code {:?} must be digits (e.g. 01, 00004)", unit.code)));
        }
        if let Some(parent) = &unit.parent_code
            && self.unit(parent).await?.is_none()
        {
            return Err(DbError::Invalid(format!("parent unit {parent} does not exist")));
        }
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO units (code, name, level, parent_code) VALUES ($1, $2, $3, $4) ON CONFLICT(code) DO UPDATE SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code")
            .bind(&unit.code)
            .bind(&unit.name)
            .bind(&unit.level)
            .bind(&unit.parent_code)
            .execute(&self.pool)
            .await
            .map_err(|e| DbError::Invalid(format!("unit {}: {e}", unit.code)))?;
        Ok(())
    }

    pub async fn unit(&self, code: &str) -> Result<Option<Unit>, DbError> {
        Ok(sqlx::query("SELECT code, name, level, parent_code FROM units WHERE code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Unit { code: r.get(0), name: r.get(1), level: r.get(2), parent_code: r.get(3) }))
    }

    /// [`Db::unit_scope`], from memory while the units stand at sequence `units_seq`.
    pub async fn unit_scope_at(&self, code: &str, units_seq: i64) -> Result<Vec<String>, DbError> {
        if let Ok(scopes) = self.scopes.lock()
            && let Some((seq, scope)) = scopes.get(code)
            && *seq == units_seq
        {
            return Ok(scope.clone());
        }
        let scope = self.unit_scope(code).await?;
        if let Ok(mut scopes) = self.scopes.lock() {
            // Bounded: there are as many entries as units that have users.
            if scopes.len() >= 20_000 {
                scopes.clear();
            }
            scopes.insert(code.to_owned(), (units_seq, scope.clone()));
        }
        Ok(scope)
    }

    /// The codes of `code` and every unit below it.
    pub async fn unit_scope(&self, code: &str) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE scope(code) AS (SELECT CAST($1 AS TEXT) UNION SELECT u.code FROM units u JOIN scope s ON u.parent_code = s.code) SELECT code FROM scope",
        )
        .bind(code)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn unit_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM units").fetch_one(&self.pool).await?)
    }

    /// The given units (any level), by code.
    pub async fn units_in(&self, units: &[String]) -> Result<Vec<Unit>, DbError> {
        Ok(sqlx::query("SELECT code, name, level, parent_code FROM units WHERE code IN (SELECT value FROM json_each($1)) ORDER BY code")
            .bind(serde_json::Value::from(units.to_vec()).to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Unit { code: r.get(0), name: r.get(1), level: r.get(2), parent_code: r.get(3) })
            .collect())
    }

    /// The communes among the given units, by code.
    pub async fn communes_in(&self, units: &[String]) -> Result<Vec<Unit>, DbError> {
        Ok(self.units_in(units).await?.into_iter().filter(|u| u.level == "commune").collect())
    }
}
