//! Who may read what, for every route that reads or acts on a record, a template, an
//! attachment or an export: one decision, here. A user reads a record only in their unit
//! subtree and, for a restricted template, only when granted it; a template only if it is not
//! restricted from them; an attachment only through a record they may read that refers to it.
//! What lies outside is answered exactly as what does not exist.

use diaban_core::Form;
use std::sync::Arc;

use crate::store::{Db, DbError, RecordRow, User};

/// What one user may read, read once per request.
#[derive(Clone, Debug)]
pub struct Access {
    /// The units of the user's subtree.
    pub units: Vec<String>,
    /// Restricted templates not granted to the user.
    pub hidden: Vec<String>,
}

impl Access {
    pub async fn of(db: &Db, user: &User) -> Result<Access, DbError> {
        Ok(Access { units: db.unit_scope(&user.unit_code).await?, hidden: db.hidden_templates(user).await? })
    }

    /// Whether a unit lies in the user's units (its figures and records theirs to read).
    pub fn unit(&self, code: &str) -> bool {
        self.units.iter().any(|u| u == code)
    }

    /// Whether the user may read a template (and its records, in their units).
    pub fn template(&self, template_id: &str) -> bool {
        !self.hidden.iter().any(|h| h == template_id)
    }

    /// The newest version of a template the user may read, compiled.
    pub async fn form(&self, db: &Db, template_id: &str) -> Result<Option<Arc<Form>>, DbError> {
        if !self.template(template_id) {
            return Ok(None);
        }
        let Some(template) = db.template(template_id, None).await? else { return Ok(None) };
        db.form(&template.id, template.version).await
    }

    /// A record the user may read.
    pub async fn record(&self, db: &Db, record_id: &str) -> Result<Option<RecordRow>, DbError> {
        Ok(db.record_in_units(record_id, &self.units).await?.filter(|r| self.template(&r.template_id)))
    }

    /// Whether a record the user may read refers to the attachment.
    pub async fn attachment(&self, db: &Db, sha256: &str) -> Result<bool, DbError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM record_attachments ra JOIN records r ON r.id = ra.record_id
             WHERE ra.sha256 = $1 AND r.unit_code IN (SELECT value FROM json_each($2))
               AND NOT EXISTS (SELECT 1 FROM json_each($3) h WHERE h.value = r.template_id)
             LIMIT 1",
        )
        .bind(sha256)
        .bind(serde_json::Value::from(self.units.clone()).to_string())
        .bind(serde_json::Value::from(self.hidden.clone()).to_string())
        .fetch_optional(&db.pool)
        .await?;
        Ok(found.is_some())
    }
}
