//! Templates and shared choice lists: publication, compiled forms, restricted templates and
//! the grants that open them.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Db, DbError, Marks, User, log_change};
use diaban_core::form::{Form, PublishError};
use diaban_core::template::{Choice, Sensitivity, SharedChoiceList, Template};
use sqlx::{AnyConnection, Row};

pub fn parse_template(body: &str) -> Result<Template, DbError> {
    serde_json::from_str(body).map_err(|e| DbError::Invalid(format!("stored template: {e}")))
}

impl Db {
    /// The latest version of every published template.
    pub async fn published_templates(&self) -> Result<Vec<Template>, DbError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM templates t WHERE version = (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        bodies.iter().map(|b| parse_template(b)).collect()
    }

    /// Publishes a template version after every publication check, with the shared choice
    /// lists it uses copied in. Publishing the same version with the same content again
    /// changes nothing; other content under an existing version is refused. Returns whether
    /// it was new, and the template as published.
    pub async fn publish_template(&self, template: Template) -> Result<(bool, Template), DbError> {
        let mut template = template;
        let mut shared = HashMap::new();
        for row in sqlx::query("SELECT name, body FROM shared_choice_lists").fetch_all(&self.pool).await? {
            let choices: Vec<Choice> = serde_json::from_str(row.get("body"))
                .map_err(|e| DbError::Invalid(format!("stored choice list: {e}")))?;
            shared.insert(row.get::<String, _>("name"), choices);
        }
        template.embed_shared_lists(|name| shared.get(name).cloned())?;
        let form = Form::compile(template)?;
        let template = form.template().clone();
        let now = self.clock.now();
        if !template.indicators.is_empty() {
            // Indicators read other templates: they must be published, with the fields named.
            let published = self.published_templates().await?;
            diaban_core::indicators::check_sources(&template, |id| published.iter().find(|t| t.id == id).cloned())
                .map_err(|e| PublishError::BadIndicator(e.to_string()))?;
        }
        let body = serde_json::to_string(&template).map_err(|e| DbError::Invalid(e.to_string()))?;
        diaban_core::limits::check_bytes("the template", body.len(), diaban_core::limits::MAX_TEMPLATE_BYTES)
            .map_err(|e| DbError::Invalid(e.to_string()))?;
        let new = self
            .write(async |tx| {
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT body FROM templates WHERE id = $1 AND version = $2")
                        .bind(&template.id)
                        .bind(i64::from(template.version))
                        .fetch_optional(&mut *tx)
                        .await?;
                match existing {
                    Some(old) if old == body => return Ok(false),
                    Some(_) => {
                        return Err(DbError::Invalid(format!(
                            "template {} version {} is already published with other content; publish a new version",
                            template.id, template.version
                        )));
                    }
                    None => {}
                }
                let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM templates WHERE id = $1")
                    .bind(&template.id)
                    .fetch_one(&mut *tx)
                    .await?;
                if latest.is_some_and(|v| v >= template.version as i64) {
                    return Err(DbError::Invalid(format!(
                        "template {} already has version {}; a new version must be higher",
                        template.id,
                        latest.unwrap_or_default()
                    )));
                }
                let seq = log_change(tx, "template", &template.id, None, now).await?;
                sqlx::query("INSERT INTO templates (id, version, body, published_at, seq) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&template.id)
                    .bind(i64::from(template.version))
                    .bind(&body)
                    .bind(self.clock.now())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                Ok(true)
            })
            .await?;
        Ok((new, template))
    }

    /// Creates or replaces a shared choice list. Templates already published keep their copy.
    pub async fn publish_choice_list(&self, list: &SharedChoiceList) -> Result<(), DbError> {
        if list.name.is_empty() || !list.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(DbError::Invalid(format!(
                "choice list name {:?} must be lowercase letters, digits and '_'",
                list.name
            )));
        }
        let mut values = std::collections::HashSet::new();
        if list.choices.is_empty() || !list.choices.iter().all(|c| values.insert(c.value.as_str())) {
            return Err(DbError::Invalid(format!(
                "choice list {:?} must have choices with distinct values",
                list.name
            )));
        }
        let body = serde_json::to_string(&list.choices).map_err(|e| DbError::Invalid(e.to_string()))?;
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO shared_choice_lists (name, body, updated_at) VALUES ($1, $2, $3) ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at")
            .bind(&list.name)
            .bind(body)
            .bind(self.clock.now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The compiled form of a published template version.
    pub async fn form(&self, id: &str, version: u32) -> Result<Option<Arc<Form>>, DbError> {
        if let Some(form) = self.forms.get(id, version) {
            return Ok(Some(form));
        }
        let mut conn = self.pool.acquire().await?;
        self.form_in(&mut conn, id, version).await
    }

    /// [`Db::form`], reading through `conn` (a caller holding a connection takes no second).
    pub async fn form_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        version: u32,
    ) -> Result<Option<Arc<Form>>, DbError> {
        if let Some(form) = self.forms.get(id, version) {
            return Ok(Some(form));
        }
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM templates WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(i64::from(version))
            .fetch_optional(&mut *conn)
            .await?;
        let Some(template) = body.map(|b| parse_template(&b)).transpose()? else { return Ok(None) };
        Ok(Some(self.forms.insert(Form::compile(template)?)))
    }

    /// Restricted templates the user has not been granted: neither they nor their records
    /// reach the user's devices or pages.
    pub async fn hidden_templates(&self, user: &User) -> Result<Vec<String>, DbError> {
        let marks = self.marks(&user.username).await?;
        self.hidden_at(&marks).await
    }

    /// [`Db::hidden_templates`] for the user whose [`Marks`] these are.
    pub async fn hidden_at(&self, marks: &Marks) -> Result<Vec<String>, DbError> {
        let restricted = self.restricted_templates(marks.templates).await?;
        Ok(restricted.into_iter().filter(|id| !marks.grants.contains(id)).collect())
    }

    /// Ids of restricted templates (any version restricted) while the templates stand at
    /// sequence `latest`, sorted; parsed again only after a publication, not at every sync.
    async fn restricted_templates(&self, latest: i64) -> Result<Vec<String>, DbError> {
        if let Ok(cached) = self.restricted.lock()
            && cached.0 == latest
            && latest != 0
        {
            return Ok(cached.1.clone());
        }
        let bodies: Vec<(String, String)> =
            sqlx::query_as("SELECT id, body FROM templates").fetch_all(&self.pool).await?;
        let mut ids: Vec<String> = bodies
            .iter()
            .filter(|(_, body)| parse_template(body).is_ok_and(|t| t.sensitivity == Sensitivity::Restricted))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        if let Ok(mut cached) = self.restricted.lock() {
            *cached = (latest, ids.clone());
        }
        Ok(ids)
    }

    pub async fn grant_template(&self, username: &str, template_id: &str) -> Result<(), DbError> {
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO template_grants (username, template_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(username)
            .bind(template_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes a restricted template back from a user; whether they had it. Their devices drop
    /// its records at their next sync.
    pub async fn revoke_template(&self, username: &str, template_id: &str) -> Result<bool, DbError> {
        let _guard = self.committer.exclusive().await;
        let done = sqlx::query("DELETE FROM template_grants WHERE username = $1 AND template_id = $2")
            .bind(username)
            .bind(template_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A template at `version`, or its latest version.
    pub async fn template(&self, id: &str, version: Option<u32>) -> Result<Option<Template>, DbError> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM templates WHERE id = $1 AND ($2 IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .bind(version.map(i64::from))
        .bind(version.map(i64::from))
        .fetch_optional(&self.pool)
        .await?;
        body.map(|b| parse_template(&b)).transpose()
    }
}
