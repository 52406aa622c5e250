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

const MIGRATIONS: &[EmbeddedMigration] = &[
    (1, "device store", include_str!("../migrations/0001_device_store.sql")),
    (2, "attachments", include_str!("../migrations/0002_attachments.sql")),
    (3, "record chunks", include_str!("../migrations/0003_record_chunks.sql")),
    (4, "units", include_str!("../migrations/0004_units.sql")),
    (5, "app lock", include_str!("../migrations/0005_app_lock.sql")),
];

/// How many appended chunks a record collects before they are folded into its snapshot.
pub const FOLD_AFTER: i64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("this key does not open the device store")]
    WrongKey,
    #[error("the device store is locked; unlock it with the PIN")]
    Locked,
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
    /// Attachments the document refers to.
    pub attachments: Vec<AttachmentRef>,
}

/// A photo or file a record refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttachmentRef {
    pub sha256: String,
    pub content_type: String,
    pub size: u64,
}

impl AttachmentRef {
    /// Every attachment value (`{"sha256", "content_type", "size"}`) anywhere in a record's values.
    pub fn find_all(values: &serde_json::Value) -> Vec<AttachmentRef> {
        let mut out = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<AttachmentRef>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let (Some(sha), Some(ct), Some(size)) = (
                        map.get("sha256").and_then(|x| x.as_str()),
                        map.get("content_type").and_then(|x| x.as_str()),
                        map.get("size").and_then(|x| x.as_u64()),
                    ) {
                        out.push(AttachmentRef { sha256: sha.to_owned(), content_type: ct.to_owned(), size });
                    } else {
                        map.values().for_each(|v| walk(v, out));
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(values, &mut out);
        out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        out.dedup();
        out
    }
}

/// A record's index columns: what lists show, without its document.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordIndex {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub unit_code: String,
    pub state: String,
    pub updated_at: i64,
    pub unsent: bool,
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
    pub(crate) pool: SqlitePool,
    /// What seals and opens the store's values; `None` while the app lock holds it closed
    /// (`crate::lock`).
    pub(crate) sealer: crate::lock::KeySlot,
}

/// What the key check setting holds: a known value sealed under the store's key.
const KEY_CHECK: &str = "key_check";

impl Store {
    /// Opens (or creates) the store at `path`, sealed with `key` (32 bytes). A store created
    /// with another key gives [`StoreError::WrongKey`], never garbage.
    pub async fn open(path: &Path, key: &[u8]) -> Result<Store, StoreError> {
        let store = Store::open_closed(path).await?;
        store.unseal(Sealer::new(key)?).await?;
        Ok(store)
    }

    /// Opens (or creates) the store's file with nothing to seal or open its values yet.
    pub(crate) async fn open_closed(path: &Path) -> Result<Store, StoreError> {
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
        Ok(Store { pool, sealer: Default::default() })
    }

    /// Opens the store's values with `sealer`, if it is the store's key (a store created with
    /// another key gives [`StoreError::WrongKey`] and stays closed).
    pub(crate) async fn unseal(&self, sealer: Sealer) -> Result<(), StoreError> {
        self.sealer.set(Some(sealer));
        match self.setting(KEY_CHECK).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => self.set_setting(KEY_CHECK, "diaban").await,
            Err(StoreError::Key(CryptoError::Unreadable)) => {
                self.sealer.set(None);
                Err(StoreError::WrongKey)
            }
            Err(e) => {
                self.sealer.set(None);
                Err(e)
            }
        }
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_optional(&self.pool).await?;
        sealed
            .map(|sealed| {
                let plain = self.sealer.get()?.open(setting_aad(key).as_bytes(), &sealed)?;
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
        let sealed = self.sealer.get()?.seal(setting_aad(key).as_bytes(), value.as_bytes());
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

    /// A record with its whole document: the snapshot followed by any appended chunks
    /// (Automerge loads the concatenation).
    pub async fn record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let row = sqlx::query(select_records!("WHERE id = ?")).bind(id).fetch_optional(&self.pool).await?;
        match row {
            Some(r) => Ok(Some(self.with_chunks(self.record_from_row(&r)?).await?)),
            None => Ok(None),
        }
    }

    async fn with_chunks(&self, mut record: StoredRecord) -> Result<StoredRecord, StoreError> {
        let chunks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM record_chunks WHERE record_id = ? ORDER BY id")
            .bind(&record.id)
            .fetch_all(&self.pool)
            .await?;
        for chunk in chunks {
            record.doc.extend(self.sealer.get()?.open(chunk_aad(&record.id).as_bytes(), &chunk)?);
        }
        Ok(record)
    }

    /// Records an edit: the index columns, and the changes since the last write as a new
    /// chunk (`record.doc` is that chunk). Returns how many chunks the record now has.
    pub async fn append_record(&self, record: &StoredRecord) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (code, message) = record.rejection.clone().unzip();
        sqlx::query("UPDATE records SET state = ?, updated_at = ?, heads = ?, server_heads = ?, rejection_code = ?, rejection_message = ? WHERE id = ?")
            .bind(&record.state)
            .bind(record.updated_at)
            .bind(to_json(&record.heads))
            .bind(to_json(&record.server_heads))
            .bind(code)
            .bind(message)
            .bind(&record.id)
            .execute(&mut *tx)
            .await?;
        if !record.doc.is_empty() {
            sqlx::query("INSERT INTO record_chunks (record_id, data) VALUES (?, ?)")
                .bind(&record.id)
                .bind(self.sealer.get()?.seal(chunk_aad(&record.id).as_bytes(), &record.doc))
                .execute(&mut *tx)
                .await?;
        }
        self.put_refs(&mut tx, record).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_chunks WHERE record_id = ?")
            .bind(&record.id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(count)
    }

    /// Records of a template and/or in a state, newest first, from the index columns alone
    /// (no document is read or decrypted).
    pub async fn list(&self, template_id: Option<&str>, state: Option<&str>) -> Result<Vec<RecordIndex>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, template_id, template_version, unit_code, state, updated_at, heads != server_heads AS unsent
             FROM records WHERE (?1 IS NULL OR template_id = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY updated_at DESC, id",
        )
        .bind(template_id)
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(index_from_row).collect())
    }

    /// Records the server refused, with its (code, message), newest first.
    pub async fn rejected(&self) -> Result<Vec<(RecordIndex, (String, String))>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, template_id, template_version, unit_code, state, updated_at, heads != server_heads AS unsent,
                    rejection_code, rejection_message
             FROM records WHERE rejection_code IS NOT NULL ORDER BY updated_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let index = index_from_row(r);
                let reason: (Option<String>, Option<String>) = (r.get("rejection_code"), r.get("rejection_message"));
                (index, (reason.0.unwrap_or_default(), reason.1.unwrap_or_default()))
            })
            .collect())
    }

    /// The units the device knows (the user's subtree), by code.
    pub async fn units(&self) -> Result<Vec<crate::protocol::UnitInfo>, StoreError> {
        let rows =
            sqlx::query("SELECT code, name, level, parent_code FROM units ORDER BY code").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| crate::protocol::UnitInfo {
                code: r.get("code"),
                name: r.get("name"),
                level: r.get("level"),
                parent_code: r.get::<Option<String>, _>("parent_code").unwrap_or_default(),
            })
            .collect())
    }

    /// Saves a template version (as received by sync).
    pub async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        put_template(&mut conn, template).await
    }

    /// Records holding changes the server has not committed.
    pub async fn unsent_records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let rows =
            sqlx::query(select_records!("WHERE heads != server_heads ORDER BY id")).fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in &rows {
            out.push(self.with_chunks(self.record_from_row(r)?).await?);
        }
        Ok(out)
    }

    /// Writes a record's document and index columns (one transaction).
    pub async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_record_in(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    // --- attachments ---------------------------------------------------------------------

    /// Keeps a photo or file (sealed). `uploaded` is true for one that came from the server.
    pub async fn put_attachment(
        &self,
        r: &AttachmentRef,
        record_id: &str,
        data: &[u8],
        uploaded: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO attachments (sha256, record_id, content_type, size, data, uploaded) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO NOTHING")
            .bind(&r.sha256)
            .bind(record_id)
            .bind(&r.content_type)
            .bind(r.size as i64)
            .bind(self.sealer.get()?.seal(attachment_aad(&r.sha256).as_bytes(), data))
            .bind(uploaded)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn attachment(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT data FROM attachments WHERE sha256 = ?")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        let sealer = self.sealer.get()?;
        Ok(sealed.map(|s| sealer.open(attachment_aad(sha256).as_bytes(), &s)).transpose()?)
    }

    /// Total size of the attachments kept for a record.
    pub async fn record_attachment_bytes(&self, record_id: &str) -> Result<u64, StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(size), 0) FROM attachments WHERE record_id = ?")
            .bind(record_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(total as u64)
    }

    /// Attachments made here that the server has not confirmed.
    pub async fn pending_uploads(&self) -> Result<Vec<AttachmentRef>, StoreError> {
        let rows = sqlx::query("SELECT sha256, content_type, size FROM attachments WHERE uploaded = 0 ORDER BY sha256")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| AttachmentRef { sha256: r.get(0), content_type: r.get(1), size: r.get::<i64, _>(2) as u64 })
            .collect())
    }

    /// Records that refer to an attachment made here and not uploaded yet: they wait for it
    /// (the server takes a reference only to what this user uploaded).
    pub async fn awaiting_uploads(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT r.record_id FROM attachment_refs r JOIN attachments a ON a.sha256 = r.sha256 WHERE a.uploaded = 0",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect())
    }

    pub async fn mark_uploaded(&self, sha256: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE attachments SET uploaded = 1 WHERE sha256 = ?").bind(sha256).execute(&self.pool).await?;
        Ok(())
    }

    /// Attachments records refer to that are not on the device, with a record referring to each.
    pub async fn missing_attachments(&self) -> Result<Vec<(AttachmentRef, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sha256, content_type, size, MIN(record_id) FROM attachment_refs
             WHERE sha256 NOT IN (SELECT sha256 FROM attachments) GROUP BY sha256 ORDER BY sha256",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (AttachmentRef { sha256: r.get(0), content_type: r.get(1), size: r.get::<i64, _>(2) as u64 }, r.get(3))
            })
            .collect())
    }

    /// Bytes of a download already kept, from the start.
    pub async fn downloaded_bytes(&self, sha256: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(length), 0) FROM download_chunks WHERE sha256 = ?")
            .bind(sha256)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Keeps one downloaded chunk; a later call resumes after the last one kept.
    pub async fn put_download_chunk(&self, sha256: &str, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO download_chunks (sha256, offset, length, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(sha256)
        .bind(offset as i64)
        .bind(data.len() as i64)
        .bind(self.sealer.get()?.seal(format!("chunk/{sha256}/{offset}").as_bytes(), data))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The downloaded chunks joined, in order; they are dropped whatever the outcome.
    pub async fn take_download(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let rows = sqlx::query("SELECT offset, data FROM download_chunks WHERE sha256 = ? ORDER BY offset")
            .bind(sha256)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let offset: i64 = r.get(0);
            out.extend(
                self.sealer.get()?.open(format!("chunk/{sha256}/{offset}").as_bytes(), &r.get::<Vec<u8>, _>(1))?,
            );
        }
        sqlx::query("DELETE FROM download_chunks WHERE sha256 = ?").bind(sha256).execute(&self.pool).await?;
        Ok(out)
    }

    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

/// The index columns of a `records` row selected with an `unsent` column.
fn index_from_row(r: &sqlx::sqlite::SqliteRow) -> RecordIndex {
    RecordIndex {
        id: r.get("id"),
        template_id: r.get("template_id"),
        template_version: r.get("template_version"),
        unit_code: r.get("unit_code"),
        state: r.get("state"),
        updated_at: r.get("updated_at"),
        unsent: r.get("unsent"),
    }
}

/// Saves a unit as received by sync (replacing what the device knew of it).
pub(crate) async fn put_unit(
    tx: &mut sqlx::SqliteConnection,
    unit: &crate::protocol::UnitInfo,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO units (code, name, level, parent_code) VALUES (?, ?, ?, ?)
         ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code",
    )
    .bind(&unit.code)
    .bind(&unit.name)
    .bind(&unit.level)
    .bind(&unit.parent_code)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Removes what lies outside the user's reach now (after a move to another unit, a revoked
/// grant): records of other units or of hidden templates, with their chunks and attachments,
/// other units, hidden templates. A record with changes the server has not committed stays:
/// nothing made on this phone is lost, and sync shows why the server refuses it. Returns how
/// many records were removed.
pub(crate) async fn forget_outside(
    tx: &mut sqlx::SqliteConnection,
    units: &[String],
    hidden_templates: &[String],
) -> Result<u64, StoreError> {
    let units = serde_json::Value::from(units.to_vec()).to_string();
    let hidden = serde_json::Value::from(hidden_templates.to_vec()).to_string();
    let gone: Vec<String> = sqlx::query_scalar(
        "DELETE FROM records
         WHERE (unit_code NOT IN (SELECT value FROM json_each(?1)) OR template_id IN (SELECT value FROM json_each(?2)))
           AND heads = server_heads AND rejection_code IS NULL
         RETURNING id",
    )
    .bind(&units)
    .bind(&hidden)
    .fetch_all(&mut *tx)
    .await?;
    let ids = serde_json::Value::from(gone.clone()).to_string();
    for statement in [
        "DELETE FROM record_chunks WHERE record_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM attachment_refs WHERE record_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM attachments WHERE uploaded = 1 AND record_id IN (SELECT value FROM json_each(?1))",
    ] {
        sqlx::query(statement).bind(&ids).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM units WHERE code NOT IN (SELECT value FROM json_each(?1))")
        .bind(&units)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM templates WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(&hidden)
        .execute(&mut *tx)
        .await?;
    Ok(gone.len() as u64)
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
        .bind(self.sealer.get()?.seal(record_aad(&r.id).as_bytes(), &r.doc))
        .bind(to_json(&r.heads))
        .bind(to_json(&r.server_heads))
        .bind(code)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        // A snapshot holds everything: the record's chunks are folded into it.
        sqlx::query("DELETE FROM record_chunks WHERE record_id = ?").bind(&r.id).execute(&mut *tx).await?;
        self.put_refs(tx, r).await
    }

    async fn put_refs(&self, tx: &mut sqlx::SqliteConnection, r: &StoredRecord) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachment_refs WHERE record_id = ?").bind(&r.id).execute(&mut *tx).await?;
        for a in &r.attachments {
            sqlx::query("INSERT INTO attachment_refs (record_id, sha256, content_type, size) VALUES (?, ?, ?, ?)")
                .bind(&r.id)
                .bind(&a.sha256)
                .bind(&a.content_type)
                .bind(a.size as i64)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    fn record_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> Result<StoredRecord, StoreError> {
        let heads = |col: &str| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(row.get(col)).map_err(|e| StoreError::Damaged(format!("{col}: {e}")))
        };
        let id: String = row.get("id");
        let doc = self.sealer.get()?.open(record_aad(&id).as_bytes(), &row.get::<Vec<u8>, _>("doc"))?;
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
            attachments: Vec::new(),
        })
    }
}

pub(crate) fn setting_aad(key: &str) -> String {
    format!("setting/{key}")
}

pub(crate) fn chunk_aad(record_id: &str) -> String {
    format!("record-chunk/{record_id}")
}

pub(crate) fn attachment_aad(sha256: &str) -> String {
    format!("attachment/{sha256}")
}

pub(crate) fn record_aad(id: &str) -> String {
    format!("record/{id}")
}
