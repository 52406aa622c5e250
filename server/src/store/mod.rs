//! Server storage through sqlx's `Any` driver: SQLite (one file, WAL: the embedded default)
//! or PostgreSQL (several server nodes on one database). Units, users, devices, templates,
//! records, web sessions and the audit log.
//!
//! One set of SQL serves both: numbered parameters (`$1`), `ON CONFLICT`, `RETURNING`, and
//! `json_each(text)` for lists (built into SQLite, a small SQL function in the PostgreSQL
//! schema). Each backend has its own migrations.

pub mod commit;
pub mod conns;
pub mod docs;

use diaban_core::clock::Clock;
use diaban_core::db::{EmbeddedMigration, migrator};
use std::collections::HashMap;
use std::sync::Arc;

use diaban_core::form::{Form, FormCache, PublishError};
use diaban_core::template::{Choice, Role, Sensitivity, SharedChoiceList, Template};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::store::commit::{Mark, with_marks};

const MIGRATIONS: &[EmbeddedMigration] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "shared choice lists", include_str!("../../migrations/sqlite/0002_shared_choice_lists.sql")),
    (3, "attachments", include_str!("../../migrations/sqlite/0003_attachments.sql")),
    (4, "record chunks", include_str!("../../migrations/sqlite/0004_record_chunks.sql")),
    (5, "unit history", include_str!("../../migrations/sqlite/0005_unit_history.sql")),
    (6, "token expiry", include_str!("../../migrations/sqlite/0006_token_expiry.sql")),
    (7, "template grants", include_str!("../../migrations/sqlite/0007_template_grants.sql")),
    (8, "record period", include_str!("../../migrations/sqlite/0008_record_period.sql")),
    (9, "units in sync", include_str!("../../migrations/sqlite/0009_units_in_sync.sql")),
    (10, "amendments", include_str!("../../migrations/sqlite/0010_amendments.sql")),
    (11, "records by unit and seq", include_str!("../../migrations/sqlite/0011_records_by_unit_and_seq.sql")),
    (12, "incremental pull", include_str!("../../migrations/sqlite/0012_incremental_pull.sql")),
    (13, "device reach", include_str!("../../migrations/sqlite/0013_device_reach.sql")),
    (14, "record snapshots", include_str!("../../migrations/sqlite/0014_record_snapshots.sql")),
    (15, "incremental rescan", include_str!("../../migrations/sqlite/0015_incremental_rescan.sql")),
    (16, "attachment uploads", include_str!("../../migrations/sqlite/0016_attachment_uploads.sql")),
    (17, "device wipe", include_str!("../../migrations/sqlite/0017_device_wipe.sql")),
];

const PG_MIGRATIONS: &[EmbeddedMigration] = &[
    (1, "schema", include_str!("../../migrations/postgres/0001_schema.sql")),
    (2, "records by unit and seq", include_str!("../../migrations/postgres/0002_records_by_unit_and_seq.sql")),
    (3, "incremental pull", include_str!("../../migrations/postgres/0003_incremental_pull.sql")),
    (4, "json_group_array", include_str!("../../migrations/postgres/0004_json_group_array.sql")),
    (5, "device reach", include_str!("../../migrations/postgres/0005_device_reach.sql")),
    (6, "record snapshots", include_str!("../../migrations/postgres/0006_record_snapshots.sql")),
    (7, "incremental rescan", include_str!("../../migrations/postgres/0007_incremental_rescan.sql")),
    (8, "attachment uploads", include_str!("../../migrations/postgres/0008_attachment_uploads.sql")),
    (9, "device wipe", include_str!("../../migrations/postgres/0009_device_wipe.sql")),
];

/// Which database a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One file; one writer at a time (group commit); one server process.
    Sqlite,
    /// Shared by several server processes: writers serialize on one advisory lock, so change-log
    /// sequences commit in order, and commits are announced with NOTIFY.
    Postgres,
}

/// The PostgreSQL advisory lock every change-log writer holds until it commits.
pub const PG_WRITE_LOCK: i64 = 0x4449_4142;
/// The PostgreSQL channel a commit that logged changes is announced on.
pub const PG_CHANNEL: &str = "diaban_changes";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("the template cannot be published: {0}")]
    Publish(#[from] PublishError),
}

/// [`Db::put_record`]'s batch on SQLite for a record without attachments. $15: the expected sequence (NULL: no such record yet; `IS` compares
/// NULLs too); every statement is guarded by it. The new sequence is read with scalar
/// `(SELECT MAX(seq) FROM change_log)`: one seek. (In a FROM subquery SQLite 3.50 scans the
/// whole change log for it.)
macro_rules! plain_record_write {
    () => {
            "INSERT INTO change_log (kind, ref_id, device_id, at)
               SELECT 'record', $1, $12, $8 WHERE (SELECT seq FROM records WHERE id = $1) IS $15;
             INSERT INTO record_chunks (record_id, data, seq)
               SELECT $1, $14, (SELECT MAX(seq) FROM change_log)
               WHERE $14 IS NOT NULL AND (SELECT seq FROM records WHERE id = $1) IS $15;
             DELETE FROM record_chunks WHERE $14 IS NULL AND record_id = $1 AND (SELECT seq FROM records WHERE id = $1) IS $15;
             INSERT INTO record_snapshots (record_id, doc)
               SELECT $1, $9 WHERE $9 IS NOT NULL AND (SELECT seq FROM records WHERE id = $1) IS $15
             ON CONFLICT(record_id) DO UPDATE SET doc = excluded.doc;
             INSERT INTO records (id, template_id, template_version, unit_code, state, created_by, created_at, updated_at, heads, values_json, seq, period, snapshot_seq)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $10, $11,
                 (SELECT MAX(seq) FROM change_log), $13, (SELECT MAX(seq) FROM change_log)
               WHERE (SELECT seq FROM records WHERE id = $1) IS $15
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
               heads = excluded.heads, values_json = excluded.values_json, seq = excluded.seq,
               snapshot_seq = CASE WHEN $9 IS NULL THEN records.snapshot_seq ELSE excluded.seq END
             RETURNING seq"
    };
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// What "now" and "today" are for this server: the system clock unless pinned
    /// (`DIABAN_CLOCK`, for tests and demos).
    pub clock: Clock,
    /// The database URL (PostgreSQL: for the LISTEN connection).
    url: String,
    /// Every write goes through the group committer: one transaction and one fsync for all
    /// writers that arrive together.
    committer: Arc<crate::store::commit::Committer>,
    /// Compiled forms by (template id, version); published versions never change.
    forms: Arc<FormCache>,
    /// Documents of recently written records, checked against their sequence before use.
    pub docs: Arc<crate::store::docs::DocCache>,
    /// Connections for the sync path, outside sqlx's pool (see [`crate::store::conns`]).
    conns: Arc<crate::store::conns::Conns>,
    /// Restricted template ids, with the template sequence they were read at: re-read only
    /// when a template is published (by this process or another, e.g. the admin CLI).
    restricted: Arc<std::sync::Mutex<(i64, Vec<String>)>>,
    /// Unit subtrees by unit code, with the unit sequence they were read at.
    scopes: Arc<std::sync::Mutex<Scopes>>,
}

/// The newest sequences of the change log, the units and the templates, as three SQL columns
/// (a macro, so queries built from it stay static strings).
macro_rules! sequences {
    () => {
        "(SELECT COALESCE(MAX(seq), 0) FROM change_log), (SELECT COALESCE(MAX(seq), 0) FROM units),
         (SELECT COALESCE(MAX(seq), 0) FROM templates)"
    };
}
pub(crate) use sequences;

/// Unit subtrees by unit code, each with the unit sequence it was read at.
type Scopes = HashMap<String, (i64, Vec<String>)>;

/// Where the database stood as a sync began: the newest sequences of the change log, of the
/// units and of the templates, and the restricted templates granted to the user. One
/// statement; the caches of scopes and restricted templates are checked against it.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    pub latest: i64,
    pub units: i64,
    pub templates: i64,
    pub grants: Vec<String>,
}

/// The scope sent to a device under one token: its units and the templates hidden from it,
/// and the download of what came into its reach, while one is under way.
#[derive(Clone, Debug, Default)]
pub struct ServedReach {
    pub units: Vec<String>,
    pub hidden: Vec<String>,
    pub rescan: Option<Rescan>,
}

/// Records that came into a device's reach (a move to another unit, a granted template):
/// those of `units` or `templates` go whole; the rest of the scope the device holds as of
/// `synced`, and gets only what changed after it. `synced` 0: everything goes whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rescan {
    pub units: Vec<String>,
    pub templates: Vec<String>,
    pub synced: i64,
}

/// What a write needs to know of a stored record, read in one statement.
#[derive(Clone, Debug)]
pub struct StoredState {
    /// The change-log sequence of its last change.
    pub seq: i64,
    pub template_id: String,
    pub template_version: u32,
    pub unit_code: String,
    /// Chunks appended since its snapshot.
    pub chunks: i64,
    /// Attachments its current values refer to.
    pub attachments: i64,
    /// Bytes of its stored document: snapshot and chunks.
    pub bytes: i64,
}

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

#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
}

/// A record's row, without its document.
#[derive(Clone, Debug)]
pub struct RecordRow {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub unit_code: String,
    pub unit_name: String,
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub values: serde_json::Map<String, serde_json::Value>,
    pub period: Option<String>,
}

/// How a record's document is written: a whole snapshot (which folds away the appended
/// chunks), or the changes of one commit appended as a chunk.
pub enum DocBytes<'a> {
    Snapshot(&'a [u8]),
    Chunk(&'a [u8]),
}

/// How long a device token lasts; a phone refreshes it at sync when it nears its end.
pub const TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

/// How many loaded record documents the server keeps in memory (the most recently written).
pub const DOC_CACHE: usize = 512;

/// Chunks a record collects before they are folded into its snapshot.
pub const FOLD_AFTER: i64 = 32;

/// Everything stored for a record after a change.
pub struct RecordWrite<'a> {
    pub id: &'a str,
    pub template_id: &'a str,
    pub template_version: u32,
    pub unit_code: &'a str,
    pub state: &'a str,
    pub created_by: &'a str,
    pub created_at: i64,
    pub doc: DocBytes<'a>,
    pub heads: &'a [String],
    pub values_json: &'a str,
    pub device_id: Option<&'a str>,
    pub period: Option<&'a str>,
    /// Attachments the values refer to.
    pub attachments: &'a [diaban_core::store::AttachmentRef],
    /// How many attachments the stored values referred to before this write.
    pub attachments_before: i64,
    /// The sequence the record must still have (`None`: it must not exist yet); otherwise
    /// nothing is written.
    pub expect_seq: Option<i64>,
    /// When it is written (Unix seconds, the server's clock).
    pub at: i64,
}

impl Db {
    /// Opens (creating and migrating) the database: a `postgres://` URL, or else a SQLite file.
    pub async fn open(target: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let open_err = |reason: String| DbError::Open { path: redact(target), reason };
        let (backend, url) = if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            (Backend::Postgres, target.to_owned())
        } else {
            (Backend::Sqlite, format!("sqlite://{target}?mode=rwc"))
        };
        let pool = AnyPoolOptions::new()
            // The writers' one, the sync path's (see `conns`), and the rest's.
            .max_connections(1 + crate::store::conns::KEPT as u32 + if backend == Backend::Sqlite { 4 } else { 8 })
            // A broken connection shows as a failed query; a ping before every query would
            // double the round trips to the database.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // FULL: a change is on disk before the device is told it is committed.
                        // mmap: pages are read from the OS cache in place, not copied into
                        // each connection's cache again after every commit. temp_store: the
                        // group committer's savepoints journal to memory, not to a temp file.
                        // wal_autocheckpoint 200 (not 1,000) pages: every commit empties the
                        // other connections' page caches, and a page still in the WAL is read
                        // back with a system call, one in the file through mmap.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 200",
                        )
                        .execute(conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let migrations = match backend {
            Backend::Sqlite => MIGRATIONS,
            Backend::Postgres => PG_MIGRATIONS,
        };
        migrator(migrations).run(&pool).await.map_err(|e| open_err(e.to_string()))?;
        let docs = Arc::new(crate::store::docs::DocCache::new(DOC_CACHE));
        crate::store::docs::DocCache::sweep_while_alive(Arc::downgrade(&docs));
        Ok(Db {
            pool,
            backend,
            clock: Clock::system(),
            url,
            committer: crate::store::commit::Committer::new(backend),
            docs,
            conns: Default::default(),
            forms: Default::default(),
            restricted: Default::default(),
            scopes: Default::default(),
        })
    }

    /// A connection for the sync path, which runs a few short statements per request (see
    /// [`crate::store::conns`]).
    pub async fn conn(&self) -> Result<crate::store::conns::Conn<'_>, DbError> {
        self.conns.get(&self.pool).await
    }

    /// A receiver that sees a new value after every commit that may have logged changes: this
    /// process's own, and on PostgreSQL every node's (see [`Db::listen`]).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committer.subscribe()
    }

    /// PostgreSQL: forwards the NOTIFY of every node's commits to [`Db::commits`], for as long
    /// as the process runs (reconnecting after a lost connection). SQLite: nothing to do.
    pub async fn listen(&self) -> Result<(), DbError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(PG_CHANNEL).await?;
        let committer = self.committer.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(_) => committer.announce(),
                    Err(e) => {
                        tracing::warn!("LISTEN {PG_CHANNEL}: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    /// Where the database stands for a sync of `username`'s (see [`Marks`]).
    pub async fn marks(&self, username: &str) -> Result<Marks, DbError> {
        let (latest, units, templates, grants): (i64, i64, i64, String) = sqlx::query_as(concat!(
            "SELECT ",
            sequences!(),
            ", (SELECT json_group_array(template_id) FROM template_grants WHERE username = $1)"
        ))
        .bind(username)
        .fetch_one(&self.pool)
        .await?;
        let grants = serde_json::from_str(&grants).map_err(|e| DbError::Invalid(format!("grants: {e}")))?;
        Ok(Marks { latest, units, templates, grants })
    }

    /// The highest change-log sequence committed.
    pub async fn latest_seq(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log").fetch_one(&self.pool).await?)
    }

    /// Runs `f` in a write transaction (shared with concurrent writers: one fsync for all)
    /// and returns once it is durably committed. An error in `f` undoes only `f`'s writes.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: for<'c> AsyncFnOnce(&'c mut AnyConnection) -> Result<T, DbError>,
    {
        self.committer.write(&self.pool, f).await
    }

    /// [`Db::write`] for a job that may send its [`Mark`] with its last statement.
    pub async fn write_marked<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: for<'c, 'm> AsyncFnOnce(&'c mut AnyConnection, &'m mut Mark) -> Result<T, DbError>,
    {
        self.committer.write_marked(&self.pool, f).await
    }

    // --- units -------------------------------------------------------------------------

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

    // --- users and devices -------------------------------------------------------------

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

    /// The latest version of every published template.
    pub async fn published_templates(&self) -> Result<Vec<Template>, DbError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM templates t WHERE version = (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        bodies.iter().map(|b| parse_template(b)).collect()
    }

    pub async fn unit_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM units").fetch_one(&self.pool).await?)
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

    // --- templates ---------------------------------------------------------------------

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

    /// The scope sent to a device under `token`, if it is kept.
    pub async fn served_reach(&self, device_id: &str, token: u64) -> Result<Option<ServedReach>, DbError> {
        type Row = (String, String, Option<String>, Option<String>, Option<i64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT units, hidden, fresh_units, fresh_templates, rescan_synced FROM device_reach
             WHERE device_id = $1 AND token = $2",
        )
        .bind(device_id)
        .bind(token as i64)
        .fetch_optional(&self.pool)
        .await?;
        let parse = |text: &str| -> Result<Vec<String>, DbError> {
            serde_json::from_str(text).map_err(|e| DbError::Invalid(format!("device reach: {e}")))
        };
        row.map(|(units, hidden, fresh_units, fresh_templates, synced)| {
            let rescan = match synced {
                Some(synced) => Some(Rescan {
                    units: parse(fresh_units.as_deref().unwrap_or("[]"))?,
                    templates: parse(fresh_templates.as_deref().unwrap_or("[]"))?,
                    synced,
                }),
                None => None,
            };
            Ok(ServedReach { units: parse(&units)?, hidden: parse(&hidden)?, rescan })
        })
        .transpose()
    }

    /// Keeps the scope just sent to a device under its token (with the download under way, if
    /// any), beside the one the device held (`known`); older ones go.
    pub async fn keep_reach(
        &self,
        device_id: &str,
        known: u64,
        token: u64,
        served: &ServedReach,
    ) -> Result<(), DbError> {
        let json = |list: &[String]| serde_json::Value::from(list.to_vec()).to_string();
        let (units, hidden) = (json(&served.units), json(&served.hidden));
        let rescan = served.rescan.as_ref();
        let fresh_units = rescan.map(|r| json(&r.units));
        let fresh_templates = rescan.map(|r| json(&r.templates));
        self.write(async |tx| {
            sqlx::query("DELETE FROM device_reach WHERE device_id = $1 AND token <> $2 AND token <> $3")
                .bind(device_id)
                .bind(known as i64)
                .bind(token as i64)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO device_reach (device_id, token, units, hidden, fresh_units, fresh_templates, rescan_synced)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (device_id, token) DO UPDATE SET units = excluded.units, hidden = excluded.hidden,
                   fresh_units = excluded.fresh_units, fresh_templates = excluded.fresh_templates,
                   rescan_synced = excluded.rescan_synced",
            )
            .bind(device_id)
            .bind(token as i64)
            .bind(&units)
            .bind(&hidden)
            .bind(&fresh_units)
            .bind(&fresh_templates)
            .bind(rescan.map(|r| r.synced))
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// Whether any record committed up to `seq` lies in `scope` and in units `added` or
    /// templates `unhidden` (what came into a user's reach), among templates not `hidden`.
    pub async fn records_came_into_reach(
        &self,
        seq: i64,
        scope: &[String],
        hidden: &[String],
        added: &[String],
        unhidden: &[String],
    ) -> Result<bool, DbError> {
        let json = |list: &[String]| serde_json::Value::from(list.to_vec()).to_string();
        let found: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM records
               WHERE seq <= $1 AND unit_code IN (SELECT value FROM json_each($2))
                 AND template_id NOT IN (SELECT value FROM json_each($3))
                 AND (unit_code IN (SELECT value FROM json_each($4)) OR template_id IN (SELECT value FROM json_each($5))))
             THEN 1 ELSE 0 END",
        )
        .bind(seq)
        .bind(json(scope))
        .bind(json(hidden))
        .bind(json(added))
        .bind(json(unhidden))
        .fetch_one(&self.pool)
        .await?;
        Ok(found == 1)
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

    // --- records -----------------------------------------------------------------------

    /// A record's document and its stored state.
    pub async fn record_doc(tx: &mut AnyConnection, id: &str) -> Result<Option<(Vec<u8>, StoredState)>, DbError> {
        let Some(state) = Db::record_state(tx, id).await? else { return Ok(None) };
        Ok(Some((Db::stored_doc(tx, id).await?, state)))
    }

    /// The change-log sequence of a record's last change, if it is stored.
    pub async fn record_seq(tx: &mut AnyConnection, id: &str) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar("SELECT seq FROM records WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?)
    }

    /// A record's sequence, the identity columns that must never change, and the counts a
    /// write needs.
    pub async fn record_state(tx: &mut AnyConnection, id: &str) -> Result<Option<StoredState>, DbError> {
        let row: Option<(i64, String, i64, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT seq, template_id, template_version, unit_code,
                    (SELECT COUNT(*) FROM record_chunks c WHERE c.record_id = r.id),
                    (SELECT COUNT(*) FROM record_attachments a WHERE a.record_id = r.id),
                    COALESCE((SELECT LENGTH(doc) FROM record_snapshots s WHERE s.record_id = r.id), 0)
                      + COALESCE((SELECT SUM(LENGTH(data)) FROM record_chunks c WHERE c.record_id = r.id), 0)
             FROM records r WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        row.map(|(seq, template_id, version, unit_code, chunks, attachments, bytes)| {
            let template_version = u32::try_from(version)
                .map_err(|_| DbError::Invalid(format!("record {id}: template version {version}")))?;
            Ok(StoredState { seq, template_id, template_version, unit_code, chunks, attachments, bytes })
        })
        .transpose()
    }

    /// A stored record's document bytes (snapshot and chunks), read in `tx`.
    pub async fn stored_doc(tx: &mut AnyConnection, id: &str) -> Result<Vec<u8>, DbError> {
        let snapshot: Option<Vec<u8>> = sqlx::query_scalar("SELECT doc FROM record_snapshots WHERE record_id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        Db::whole_doc(tx, id, snapshot.unwrap_or_default()).await
    }

    /// A record's document: its snapshot followed by the chunks appended since.
    pub async fn whole_doc(conn: &mut AnyConnection, id: &str, snapshot: Vec<u8>) -> Result<Vec<u8>, DbError> {
        let chunks: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM record_chunks WHERE record_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        Ok(chunks.into_iter().fold(snapshot, |mut doc, chunk| {
            doc.extend(chunk);
            doc
        }))
    }

    /// The chunks of the given records committed after sequence `after`, each record's in the
    /// order appended, with the change-log sequence of each: one statement for a whole page
    /// of a pull.
    pub async fn chunks_of(
        conn: &mut AnyConnection,
        ids: &[&str],
        after: i64,
    ) -> Result<HashMap<String, Vec<(i64, Vec<u8>)>>, DbError> {
        let mut chunks: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
        if ids.is_empty() {
            return Ok(chunks);
        }
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT c.record_id, c.seq, c.data FROM json_each($1) j JOIN record_chunks c ON c.record_id = j.value
             WHERE c.seq > $2 ORDER BY c.record_id, c.id",
        )
        .bind(serde_json::Value::from(ids.to_vec()).to_string())
        .bind(after)
        .fetch_all(&mut *conn)
        .await?;
        for (id, seq, data) in rows {
            chunks.entry(id).or_default().push((seq, data));
        }
        Ok(chunks)
    }

    /// Stores a record after a change and gives it the next change-log sequence. With `mark`,
    /// this is the job's last statement, and it may send the job's mark (see [`Mark`]).
    pub async fn put_record(
        tx: &mut AnyConnection,
        r: &RecordWrite<'_>,
        mark: Option<&mut Mark>,
    ) -> Result<Option<i64>, DbError> {
        if tx.backend_name() == "SQLite" && r.attachments.is_empty() && r.attachments_before == 0 {
            return Db::put_plain_record_sqlite(tx, r, mark.map_or(0, Mark::send)).await;
        }
        if Db::record_seq(tx, r.id).await? != r.expect_seq {
            return Ok(None);
        }
        let seq = log_change(tx, "record", r.id, r.device_id, r.at).await?;
        if r.attachments_before > 0 {
            sqlx::query("DELETE FROM record_attachments WHERE record_id = $1").bind(r.id).execute(&mut *tx).await?;
        }
        for a in r.attachments {
            sqlx::query("INSERT INTO record_attachments (record_id, sha256) VALUES ($1, $2)")
                .bind(r.id)
                .bind(&a.sha256)
                .execute(&mut *tx)
                .await?;
        }
        let heads = serde_json::Value::from(r.heads.to_vec()).to_string();
        // A chunk leaves the snapshot as it is (COALESCE keeps the old one); a snapshot folds
        // the chunks away.
        let (snapshot, chunk) = match r.doc {
            DocBytes::Snapshot(bytes) => (Some(bytes), None),
            DocBytes::Chunk(bytes) => (None, Some(bytes)),
        };
        match chunk {
            Some(bytes) => {
                sqlx::query("INSERT INTO record_chunks (record_id, data, seq) VALUES ($1, $2, $3)")
                    .bind(r.id)
                    .bind(bytes)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM record_chunks WHERE record_id = $1").bind(r.id).execute(&mut *tx).await?;
            }
        }
        if let Some(snapshot) = snapshot {
            sqlx::query(
                "INSERT INTO record_snapshots (record_id, doc) VALUES ($1, $2)
                 ON CONFLICT(record_id) DO UPDATE SET doc = excluded.doc",
            )
            .bind(r.id)
            .bind(snapshot)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO records (id, template_id, template_version, unit_code, state, created_by, created_at, updated_at, heads, values_json, seq, period, snapshot_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
               heads = excluded.heads, values_json = excluded.values_json, seq = excluded.seq,
               snapshot_seq = CASE WHEN $13 THEN excluded.seq ELSE records.snapshot_seq END",
        )
        .bind(r.id)
        .bind(r.template_id)
        .bind(i64::from(r.template_version))
        .bind(r.unit_code)
        .bind(r.state)
        .bind(r.created_by)
        .bind(r.created_at)
        .bind(r.at)
        .bind(heads)
        .bind(r.values_json)
        .bind(seq)
        .bind(r.period)
        .bind(snapshot.is_some())
        .execute(&mut *tx)
        .await?;
        Ok(Some(seq))
    }

    /// [`Db::put_record`] on SQLite for a record without attachments, as one batch of
    /// statements (one hand-off to SQLite's thread instead of five), each guarded by the
    /// record's expected sequence.
    async fn put_plain_record_sqlite(
        tx: &mut AnyConnection,
        r: &RecordWrite<'_>,
        form: usize,
    ) -> Result<Option<i64>, DbError> {
        let (snapshot, chunk) = match r.doc {
            DocBytes::Snapshot(bytes) => (Some(bytes), None),
            DocBytes::Chunk(bytes) => (None, Some(bytes)),
        };
        // `form`: as it is, or ending with the job's mark (see [`Mark::send`]).
        Ok(sqlx::query_scalar(with_marks!(plain_record_write!())[form])
            .bind(r.id)
            .bind(r.template_id)
            .bind(i64::from(r.template_version))
            .bind(r.unit_code)
            .bind(r.state)
            .bind(r.created_by)
            .bind(r.created_at)
            .bind(r.at)
            .bind(snapshot)
            .bind(serde_json::Value::from(r.heads.to_vec()).to_string())
            .bind(r.values_json)
            .bind(r.device_id)
            .bind(r.period)
            .bind(chunk)
            .bind(r.expect_seq)
            // Every statement's result read to the end: the batch runs whole (a `fetch_optional`
            // would stop at the first statement's result).
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next())
    }

    /// (unit code, period, state) of a periodic template's records in the given units.
    pub async fn period_states(
        &self,
        template_id: &str,
        units: &[String],
    ) -> Result<Vec<(String, String, String)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT unit_code, period, state FROM records
             WHERE template_id = $1 AND period IS NOT NULL AND unit_code IN (SELECT value FROM json_each($2))",
        )
        .bind(template_id)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?)
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

    /// Records in the given units, newest first, for the review pages.
    pub async fn records_in_units(
        &self,
        units: &[String],
        hidden: &[String],
        limit: i64,
    ) -> Result<Vec<RecordRow>, DbError> {
        let rows = sqlx::query(
            "SELECT r.id, r.template_id, r.template_version, r.unit_code, n.name AS unit_name, r.state, r.created_by, r.created_at, r.updated_at, r.values_json, r.period
             FROM records r JOIN units n ON n.code = r.unit_code
             WHERE r.unit_code IN (SELECT value FROM json_each($1)) AND r.template_id NOT IN (SELECT value FROM json_each($2))
             ORDER BY r.updated_at DESC, r.id LIMIT $3",
        )
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .bind(serde_json::Value::from(hidden.to_vec()).to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }

    /// (id, unit code, values) of every record of a template in the given units, for
    /// indicators and reminders.
    pub async fn records_of(
        &self,
        template_id: &str,
        units: &[String],
    ) -> Result<Vec<(String, String, serde_json::Map<String, serde_json::Value>)>, DbError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, unit_code, values_json FROM records
             WHERE template_id = $1 AND unit_code IN (SELECT value FROM json_each($2)) ORDER BY id",
        )
        .bind(template_id)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, unit, values)| {
                let values =
                    serde_json::from_str(&values).map_err(|e| DbError::Invalid(format!("record values: {e}")))?;
                Ok((id, unit, values))
            })
            .collect()
    }

    /// One record, if it lies in the given units.
    pub async fn record_in_units(&self, id: &str, units: &[String]) -> Result<Option<RecordRow>, DbError> {
        let row = sqlx::query(
            "SELECT r.id, r.template_id, r.template_version, r.unit_code, n.name AS unit_name, r.state, r.created_by, r.created_at, r.updated_at, r.values_json, r.period
             FROM records r JOIN units n ON n.code = r.unit_code
             WHERE r.id = $1 AND r.unit_code IN (SELECT value FROM json_each($2))",
        )
        .bind(id)
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| record_row(&r)).transpose()
    }

    pub async fn record_document(&self, id: &str) -> Result<Option<Vec<u8>>, DbError> {
        let mut conn = self.pool.acquire().await?;
        if Db::record_state(&mut conn, id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Db::stored_doc(&mut conn, id).await?))
    }

    // --- web sessions and audit --------------------------------------------------------

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

/// Appends to the change log and returns the new sequence number.
async fn log_change(
    tx: &mut AnyConnection,
    kind: &str,
    ref_id: &str,
    device_id: Option<&str>,
    at: i64,
) -> Result<i64, DbError> {
    if tx.backend_name() == "PostgreSQL" {
        // Held until commit: sequences commit in the order they are taken, so a device's
        // cursor never passes a change that is still uncommitted on another node.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_WRITE_LOCK).execute(&mut *tx).await?;
    }
    Ok(sqlx::query_scalar("INSERT INTO change_log (kind, ref_id, device_id, at) VALUES ($1, $2, $3, $4) RETURNING seq")
        .bind(kind)
        .bind(ref_id)
        .bind(device_id)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?)
}

fn user_from_row(r: &AnyRow) -> Result<User, DbError> {
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

fn record_row(r: &AnyRow) -> Result<RecordRow, DbError> {
    let values: String = r.get("values_json");
    Ok(RecordRow {
        id: r.get("id"),
        template_id: r.get("template_id"),
        template_version: u32::try_from(r.get::<i64, _>("template_version")).unwrap_or_default(),
        unit_code: r.get("unit_code"),
        unit_name: r.get("unit_name"),
        state: r.get("state"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        values: serde_json::from_str(&values).map_err(|e| DbError::Invalid(format!("record values: {e}")))?,
        period: r.get("period"),
    })
}

pub fn parse_template(body: &str) -> Result<Template, DbError> {
    serde_json::from_str(body).map_err(|e| DbError::Invalid(format!("stored template: {e}")))
}

/// A database target fit for logs and errors: a URL's password left out.
fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &target[..scheme], &target[at..]),
        _ => target.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<'a>(id: &'a str, doc: DocBytes<'a>, expect_seq: Option<i64>) -> RecordWrite<'a> {
        RecordWrite {
            id,
            template_id: "propaganda_session",
            template_version: 1,
            unit_code: "14",
            state: "draft",
            created_by: "a",
            created_at: 1,
            doc,
            heads: &[],
            values_json: "{}",
            device_id: None,
            period: None,
            attachments: &[],
            attachments_before: 0,
            expect_seq,
            at: 2,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_is_written_only_while_its_sequence_is_the_one_expected() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.sqlite").to_string_lossy()).await.unwrap();
        db.create_unit(&Unit { code: "14".into(), name: "Tỉnh".into(), level: "province".into(), parent_code: None })
            .await
            .unwrap();
        let put = |w: RecordWrite<'static>| {
            let db = &db;
            async move { db.write(async |tx| Db::put_record(tx, &w, None).await).await.unwrap() }
        };
        let first = put(write("r", DocBytes::Snapshot(b"snap"), None)).await.expect("a new record is written");
        assert_eq!(put(write("r", DocBytes::Snapshot(b"again"), None)).await, None, "it exists: nothing written");
        let second = put(write("r", DocBytes::Chunk(b"c1"), Some(first))).await.expect("as expected: written");
        assert!(second > first);
        assert_eq!(put(write("r", DocBytes::Chunk(b"stale"), Some(first))).await, None, "changed since: nothing");

        let mut conn = db.pool.acquire().await.unwrap();
        let state = Db::record_state(&mut conn, "r").await.unwrap().unwrap();
        assert_eq!((state.seq, state.chunks), (second, 1));
        assert_eq!(Db::stored_doc(&mut conn, "r").await.unwrap(), b"snapc1", "the snapshot and the one chunk");
        let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM change_log WHERE ref_id = 'r'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(logged, 2, "a refused write logs nothing");
    }
}
