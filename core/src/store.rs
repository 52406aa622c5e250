//! The device store: one SQLite file holding settings, templates and record documents.
//!
//! Every write is one transaction in WAL mode with `synchronous = FULL`, so a write that
//! returned is on disk even if the phone dies the next instant.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::crypto::{CryptoError, Sealer};
use crate::db::{EmbeddedMigration, migrator};
use crate::template::Template;

const MIGRATIONS: &[EmbeddedMigration] = &[(1, "device store", include_str!("../migrations/0001_device_store.sql"))];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("this key does not open the device store")]
    WrongKey,
    #[error(transparent)]
    Key(#[from] CryptoError),
    #[error("cannot open the device store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("device store error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("device store holds damaged data: {0}")]
    Damaged(String),
}

/// The index columns and document of one stored record.
#[derive(Clone, Debug)]
pub struct StoredRecord {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub unit_code: String,
    pub state: String,
    pub updated_at: i64,
    pub doc: Vec<u8>,
    pub heads: Vec<String>,
    pub server_heads: Vec<String>,
    pub rejection: Option<(String, String)>,
}

impl StoredRecord {
    pub fn has_unsent_changes(&self) -> bool {
        self.heads != self.server_heads
    }
}

/// A `SELECT` of every record column, followed by the given clause (a static string for sqlx).
macro_rules! select_records {
    ($clause:literal) => {
        concat!(
            "SELECT id, template_id, template_version, unit_code, state, updated_at, doc, heads, server_heads, rejection_code, rejection_message FROM records ",
            $clause
        )
    };
}

pub struct Store {
    pool: SqlitePool,
    sealer: Sealer,
}

/// What the key check setting holds: a known value sealed under the store's key.
const KEY_CHECK: &str = "key_check";

impl Store {
    /// Opens (or creates) the store at `path`, sealed with `key` (32 bytes). A store created
    /// with another key gives [`StoreError::WrongKey`], never garbage.
    pub async fn open(path: &Path, key: &[u8]) -> Result<Store, StoreError> {
        let sealer = Sealer::new(key)?;
        let open_err = |reason: String| StoreError::Open { path: path.display().to_string(), reason };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| open_err(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        // One connection: a phone has one writer, and it keeps memory low.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        migrator(MIGRATIONS).run(&pool).await.map_err(|e| open_err(e.to_string()))?;
        let store = Store { pool, sealer };
        match store.setting(KEY_CHECK).await {
            Ok(Some(_)) => {}
            Ok(None) => store.set_setting(KEY_CHECK, "diaban").await?,
            Err(StoreError::Key(CryptoError::Unreadable)) => {
                store.pool.close().await;
                return Err(StoreError::WrongKey);
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_optional(&self.pool).await?;
        sealed
            .map(|sealed| {
                let plain = self.sealer.open(setting_aad(key).as_bytes(), &sealed)?;
                String::from_utf8(plain).map_err(|_| StoreError::Damaged(format!("setting {key}")))
            })
            .transpose()
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.set_setting_in(&mut conn, key, value).await
    }

    pub(crate) async fn set_setting_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(setting_aad(key).as_bytes(), value.as_bytes());
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(sealed)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM settings WHERE key = ?").bind(key).execute(&self.pool).await?;
        Ok(())
    }

    /// The newest version of each template.
    pub async fn latest_templates(&self) -> Result<Vec<Template>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM templates t WHERE version = (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| parse_template(row.get(0))).collect()
    }

    /// A template at a given version, or the latest when `version` is `None`.
    pub async fn template(&self, id: &str, version: Option<u32>) -> Result<Option<Template>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM templates WHERE id = ? AND (? IS NULL OR version = ?) ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .bind(version)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| parse_template(row.get(0))).transpose()
    }

    pub async fn record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let row = sqlx::query(select_records!("WHERE id = ?")).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| self.record_from_row(&r)).transpose()
    }

    /// All records, newest first, without loading them as documents.
    pub async fn records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let rows = sqlx::query(select_records!("ORDER BY updated_at DESC, id")).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.record_from_row(r)).collect()
    }

    /// Records holding changes the server has not committed.
    pub async fn unsent_records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let rows =
            sqlx::query(select_records!("WHERE heads != server_heads ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.record_from_row(r)).collect()
    }

    /// Writes a record's document and index columns (one transaction).
    pub async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_record_in(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

pub(crate) async fn put_template(tx: &mut sqlx::SqliteConnection, t: &Template) -> Result<(), StoreError> {
    let body = serde_json::to_string(t).map_err(|e| StoreError::Damaged(e.to_string()))?;
    sqlx::query("INSERT INTO templates (id, version, body) VALUES (?, ?, ?) ON CONFLICT(id, version) DO UPDATE SET body = excluded.body")
        .bind(&t.id)
        .bind(t.version)
        .bind(body)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn to_json(heads: &[String]) -> String {
    serde_json::Value::from(heads.to_vec()).to_string()
}

fn parse_template(body: String) -> Result<Template, StoreError> {
    serde_json::from_str(&body).map_err(|e| StoreError::Damaged(format!("template: {e}")))
}

impl Store {
    pub(crate) async fn put_record_in(
        &self,
        tx: &mut sqlx::SqliteConnection,
        r: &StoredRecord,
    ) -> Result<(), StoreError> {
        let (code, message) = r.rejection.clone().unzip();
        sqlx::query(
            "INSERT INTO records (id, template_id, template_version, unit_code, state, updated_at, doc, heads, server_heads, rejection_code, rejection_message)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET template_id = excluded.template_id, template_version = excluded.template_version,
               unit_code = excluded.unit_code, state = excluded.state, updated_at = excluded.updated_at, doc = excluded.doc,
               heads = excluded.heads, server_heads = excluded.server_heads,
               rejection_code = excluded.rejection_code, rejection_message = excluded.rejection_message",
        )
        .bind(&r.id)
        .bind(&r.template_id)
        .bind(r.template_version)
        .bind(&r.unit_code)
        .bind(&r.state)
        .bind(r.updated_at)
        .bind(self.sealer.seal(record_aad(&r.id).as_bytes(), &r.doc))
        .bind(to_json(&r.heads))
        .bind(to_json(&r.server_heads))
        .bind(code)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    fn record_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> Result<StoredRecord, StoreError> {
        let heads = |col: &str| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(row.get(col)).map_err(|e| StoreError::Damaged(format!("{col}: {e}")))
        };
        let id: String = row.get("id");
        let doc = self.sealer.open(record_aad(&id).as_bytes(), &row.get::<Vec<u8>, _>("doc"))?;
        let code: Option<String> = row.get("rejection_code");
        let message: Option<String> = row.get("rejection_message");
        Ok(StoredRecord {
            id,
            template_id: row.get("template_id"),
            template_version: row.get("template_version"),
            unit_code: row.get("unit_code"),
            state: row.get("state"),
            updated_at: row.get("updated_at"),
            doc,
            heads: heads("heads")?,
            server_heads: heads("server_heads")?,
            rejection: code.zip(message),
        })
    }
}

fn setting_aad(key: &str) -> String {
    format!("setting/{key}")
}

fn record_aad(id: &str) -> String {
    format!("record/{id}")
}
