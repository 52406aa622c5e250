//! Users, their devices (registration, tokens, wipes, revocation) and web sessions.

use super::{Db, DbError, Marks, sequences};
use diaban_core::template::Role;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub unit_code: String,
    pub unit_name: String,
}

/// A registered, unrevoked device and its user.
#[derive(Clone, Debug)]
pub struct AuthDevice {
    pub device_id: String,
    /// The hash of the bearer token it was authenticated with (to authenticate it again).
    pub token_hash: String,
    pub actor_id: String,
    /// When the device's token expires (Unix seconds).
    pub token_expires_at: i64,
    pub user: User,
    /// Where the database stood when the request was authenticated (read with the token, in
    /// the same statement: an idle sync needs no other).
    pub marks: Marks,
    /// An admin's order to wipe the device, if any.
    pub wipe: Option<Wipe>,
}

/// An admin's order to wipe a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wipe {
    /// Taken out of service: its unsent changes are taken one last time, then it wipes.
    Deactivated,
    /// Lost or stolen: nothing more is taken; it wipes at its next contact.
    Stolen,
}

impl Wipe {
    pub fn as_str(self) -> &'static str {
        match self {
            Wipe::Deactivated => "deactivated",
            Wipe::Stolen => "stolen",
        }
    }

    fn parse(s: &str) -> Option<Wipe> {
        [Wipe::Deactivated, Wipe::Stolen].into_iter().find(|w| w.as_str() == s)
    }
}

/// A registered device as an admin sees it.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub wipe: Option<Wipe>,
    pub wipe_confirmed_at: Option<i64>,
}

/// How long a device token lasts; a phone refreshes it at sync when it nears its end.
pub const TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

pub(super) fn user_from_row(r: &AnyRow) -> Result<User, DbError> {
    let role: String = r.get("role");
    Ok(User {
        id: r.get("id"),
        username: r.get("username"),
        display_name: r.get("display_name"),
        role: Role::parse(&role).ok_or_else(|| DbError::Invalid(format!("unknown role {role}")))?,
        unit_code: r.get("unit_code"),
        unit_name: r.get("unit_name"),
    })
}

impl Db {
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password: &str,
        role: Role,
        unit_code: &str,
    ) -> Result<(), DbError> {
        if username.is_empty() || password.chars().count() < 8 {
            return Err(DbError::Invalid(
                "username must not be empty and the password needs at least 8 characters".into(),
            ));
        }
        if self.unit(unit_code).await?.is_none() {
            return Err(DbError::Invalid(format!("unit {unit_code} does not exist")));
        }
        let hash = crate::domain::auth::hash_password(password).map_err(|e| DbError::Invalid(e.to_string()))?;
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO users (username, display_name, password_hash, role, unit_code, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(username) DO UPDATE SET display_name = excluded.display_name, password_hash = excluded.password_hash, role = excluded.role, unit_code = excluded.unit_code")
            .bind(username)
            .bind(display_name)
            .bind(hash)
            .bind(role.as_str())
            .bind(unit_code)
            .bind(self.clock.now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a user to another unit, changes their role or name (what is `None` stays); their
    /// devices learn it at their next sync, and their scope follows the new unit at once.
    pub async fn update_user(
        &self,
        username: &str,
        role: Option<Role>,
        unit_code: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), DbError> {
        if let Some(code) = unit_code
            && self.unit(code).await?.is_none()
        {
            return Err(DbError::Invalid(format!("unit {code} does not exist")));
        }
        if display_name.is_some_and(|n| n.trim().is_empty()) {
            return Err(DbError::Invalid("a user's name must not be empty".into()));
        }
        let _guard = self.committer.exclusive().await;
        let updated = sqlx::query(
            "UPDATE users SET role = COALESCE($2, role), unit_code = COALESCE($3, unit_code),
               display_name = COALESCE($4, display_name) WHERE username = $1",
        )
        .bind(username)
        .bind(role.map(|r| r.as_str()))
        .bind(unit_code)
        .bind(display_name)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(DbError::Invalid(format!("user {username} does not exist")));
        }
        Ok(())
    }

    /// Every user, by username.
    pub async fn users(&self) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.unit_code, n.name AS unit_name FROM users u JOIN units n ON n.code = u.unit_code ORDER BY u.username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// The user and their password hash.
    pub async fn user_for_login(&self, username: &str) -> Result<Option<(User, String)>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.unit_code, n.name AS unit_name, u.password_hash FROM users u JOIN units n ON n.code = u.unit_code WHERE u.username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.get("password_hash")))).transpose()
    }

    /// Registers a device for `user`, or gives an existing device of the same user and actor
    /// a new token. Returns the device id, or `None` when the actor belongs to another user or
    /// to a revoked device.
    pub async fn register_device(
        &self,
        user: &User,
        name: &str,
        actor_id: &str,
        token_hash: &str,
    ) -> Result<Option<String>, DbError> {
        let user_id = user.id;
        self.write(async move |tx| {
            let existing = sqlx::query("SELECT id, user_id, revoked_at FROM devices WHERE actor_id = $1")
                .bind(actor_id)
                .fetch_optional(&mut *tx)
                .await?;
            match existing {
                Some(row) => {
                    let (id, owner, revoked): (String, i64, Option<i64>) = (row.get(0), row.get(1), row.get(2));
                    if owner != user_id || revoked.is_some() {
                        return Ok(None);
                    }
                    sqlx::query("UPDATE devices SET token_hash = $1, token_expires_at = $2, name = $3, last_seen_at = $4 WHERE id = $5")
                        .bind(token_hash)
                        .bind(self.clock.now() + TOKEN_TTL_SECS)
                        .bind(name)
                        .bind(self.clock.now())
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    Ok(Some(id))
                }
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    sqlx::query("INSERT INTO devices (id, user_id, name, actor_id, token_hash, created_at, last_seen_at, token_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(&id)
                        .bind(user_id)
                        .bind(name)
                        .bind(actor_id)
                        .bind(token_hash)
                        .bind(self.clock.now())
                        .bind(self.clock.now())
                        .bind(self.clock.now() + TOKEN_TTL_SECS)
                        .execute(&mut *tx)
                        .await?;
                    Ok(Some(id))
                }
            }
        })
        .await
    }

    /// Replaces a valid token by a new one with a fresh expiry; returns the new expiry.
    pub async fn refresh_token(&self, device_id: &str, new_hash: &str) -> Result<i64, DbError> {
        let expires = self.clock.now() + TOKEN_TTL_SECS;
        let _guard = self.committer.exclusive().await;
        sqlx::query("UPDATE devices SET token_hash = $1, token_expires_at = $2, last_seen_at = $3 WHERE id = $4 AND revoked_at IS NULL")
            .bind(new_hash)
            .bind(expires)
            .bind(self.clock.now())
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(expires)
    }

    /// When a device's token expires.
    pub async fn token_expiry(&self, device_id: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT token_expires_at FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Revokes devices: one by id, or every device of a user. A revoked device's token stops
    /// working at once and the device cannot register again. Returns how many were revoked.
    /// Orders a device wiped (at its next contact); false if there is no such device in use.
    pub async fn order_wipe(&self, device_id: &str, wipe: Wipe) -> Result<bool, DbError> {
        let _guard = self.committer.exclusive().await;
        let done = sqlx::query("UPDATE devices SET wipe = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(wipe.as_str())
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A device confirms it wiped itself as ordered: its token stops working.
    pub async fn confirm_wipe(&self, device_id: &str) -> Result<(), DbError> {
        let _guard = self.committer.exclusive().await;
        sqlx::query(
            "UPDATE devices SET wipe_confirmed_at = $1, revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND wipe IS NOT NULL",
        )
        .bind(self.clock.now())
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn revoke_devices(&self, device_id: Option<&str>, username: Option<&str>) -> Result<u64, DbError> {
        let _guard = self.committer.exclusive().await;
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = $1 WHERE revoked_at IS NULL AND (id = $2 OR user_id = (SELECT id FROM users WHERE username = $3))",
        )
        .bind(self.clock.now())
        .bind(device_id)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every device, by user.
    pub async fn devices(&self) -> Result<Vec<DeviceRow>, DbError> {
        let rows = sqlx::query(
            "SELECT d.id, u.username, d.name, d.created_at, d.last_seen_at, d.revoked_at, d.wipe, d.wipe_confirmed_at FROM devices d JOIN users u ON u.id = d.user_id ORDER BY u.username, d.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeviceRow {
                id: r.get(0),
                username: r.get(1),
                name: r.get(2),
                created_at: r.get(3),
                last_seen_at: r.get(4),
                revoked_at: r.get(5),
                wipe: r.get::<Option<String>, _>(6).as_deref().and_then(Wipe::parse),
                wipe_confirmed_at: r.get(7),
            })
            .collect())
    }

    pub async fn device_by_token(&self, token_hash: &str) -> Result<Option<AuthDevice>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT d.id AS device_id, d.actor_id, d.token_expires_at, u.id, u.username, u.display_name, u.role, u.unit_code, n.name AS unit_name,
               (SELECT json_group_array(template_id) FROM template_grants WHERE username = u.username) AS grants, d.wipe, ",
            sequences!(),
            " FROM devices d JOIN users u ON u.id = d.user_id JOIN units n ON n.code = u.unit_code
             WHERE d.token_hash = $1 AND d.revoked_at IS NULL AND d.token_expires_at > $2"
        ))
        .bind(token_hash)
        .bind(self.clock.now())
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.map(|r| {
            let grants: String = r.get("grants");
            Ok(AuthDevice {
                device_id: r.get("device_id"),
                token_hash: token_hash.to_owned(),
                actor_id: r.get("actor_id"),
                token_expires_at: r.get("token_expires_at"),
                user: user_from_row(&r)?,
                marks: Marks {
                    latest: r.get(11),
                    units: r.get(12),
                    templates: r.get(13),
                    grants: serde_json::from_str(&grants).map_err(|e| DbError::Invalid(format!("grants: {e}")))?,
                },
                wipe: r.get::<Option<String>, _>("wipe").as_deref().and_then(Wipe::parse),
            })
        })
        .transpose()
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        ttl_secs: i64,
    ) -> Result<(), DbError> {
        let _guard = self.committer.exclusive().await;
        sqlx::query("INSERT INTO web_sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf)
            .bind(self.clock.now() + ttl_secs)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session's user and CSRF token, if the session exists and has not expired.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(User, String)>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.unit_code, n.name AS unit_name, s.csrf_token
             FROM web_sessions s JOIN users u ON u.id = s.user_id JOIN units n ON n.code = u.unit_code
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(self.clock.now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.get("csrf_token")))).transpose()
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        let _guard = self.committer.exclusive().await;
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }
}
