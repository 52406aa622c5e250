//! The counts the province's desk opens on: records per template and state, proposed
//! amendments waiting; what a roll-up sums and an export writes. Each one statement.

use super::records::{record_row, record_rows};
use super::{Db, DbError, RecordRow};

/// The states of a record sent up by its commune: what roll-ups sum and reports count as sent.
pub const SENT_UP: &[&str] = &["submitted", "signed_off", "approved"];

fn sent_up() -> String {
    serde_json::Value::from(SENT_UP.to_vec()).to_string()
}

impl Db {
    /// How many records of each template are in each of `states`, in `units`, outside `hidden`
    /// templates: `(template, state, count)`.
    pub async fn state_counts(
        &self,
        units: &[String],
        hidden: &[String],
        states: &[&str],
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT template_id, state, COUNT(*) FROM records
             WHERE state IN (SELECT value FROM json_each($3)) AND unit_code IN (SELECT value FROM json_each($1))
               AND template_id NOT IN (SELECT value FROM json_each($2))
             GROUP BY template_id, state ORDER BY template_id, state",
        )
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .bind(serde_json::Value::from(hidden.to_vec()).to_string())
        .bind(serde_json::Value::from(states.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many proposed amendments wait for a decision on records in `units` outside
    /// `hidden` templates.
    pub async fn pending_amendments(&self, units: &[String], hidden: &[String]) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM amendments a JOIN records r ON r.id = a.record_id
             WHERE a.status = 'proposed' AND r.unit_code IN (SELECT value FROM json_each($1))
               AND r.template_id NOT IN (SELECT value FROM json_each($2))",
        )
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .bind(serde_json::Value::from(hidden.to_vec()).to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The records of a template sent up (submitted, signed off, approved) in `units`, for one
    /// period or all (`None`), with their values: what a roll-up sums.
    pub async fn reported_records(
        &self,
        template_id: &str,
        period: Option<&str>,
        units: &[String],
    ) -> Result<Vec<RecordRow>, DbError> {
        let rows = sqlx::query(
            concat!(
                record_rows!(),
                " WHERE r.template_id = $1 AND ($2 IS NULL OR r.period = $3) AND r.state IN (SELECT value FROM json_each($5))
               AND r.unit_code IN (SELECT value FROM json_each($4))"
            ),
        )
        .bind(template_id)
        .bind(period)
        .bind(period)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .bind(sent_up())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }

    /// The periods for which a template has records sent up in `units`, newest first (at most
    /// `limit`).
    pub async fn reported_periods(
        &self,
        template_id: &str,
        units: &[String],
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT period FROM records
             WHERE template_id = $1 AND period IS NOT NULL AND state IN (SELECT value FROM json_each($4))
               AND unit_code IN (SELECT value FROM json_each($2))
             ORDER BY period DESC LIMIT $3",
        )
        .bind(template_id)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .bind(limit)
        .bind(sent_up())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every record of a template in `units`, by unit and creation: what an export writes.
    pub async fn template_records(&self, template_id: &str, units: &[String]) -> Result<Vec<RecordRow>, DbError> {
        let rows = sqlx::query(concat!(
            record_rows!(),
            " WHERE r.template_id = $1 AND r.unit_code IN (SELECT value FROM json_each($2))
             ORDER BY r.unit_code, r.created_at, r.id"
        ))
        .bind(template_id)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }
}
