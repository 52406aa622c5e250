//! Server storage through sqlx's `Any` driver: SQLite (one file, WAL: the embedded default)
//! or PostgreSQL (several server nodes on one database). Units, users, devices, templates,
//! records, web sessions and the audit log, one module per aggregate; this one opens the
//! database and holds what they share (the change log, the write path's marks).
//!
//! One set of SQL serves both: numbered parameters (`$1`), `ON CONFLICT`, `RETURNING`, and
//! `json_each(text)` for lists (built into SQLite, a small SQL function in the PostgreSQL
//! schema). Each backend has its own migrations.
mod accounts;
mod amendments;
mod audit;
pub mod commit;
pub mod conns;
mod desk;
pub mod docs;
mod queue;
mod reach;
mod records;
mod templates;
mod units;

pub use accounts::{AuthDevice, DeviceRow, TOKEN_TTL_SECS, User, Wipe};
pub use amendments::Amendment;
pub use audit::{AUDIT_PAGE, AuditEntry};
pub use desk::SENT_UP;
pub use queue::{QUEUE_PAGE, QueueCursor, QueuePage, QueueQuery, QueueRow};
pub use reach::{Rescan, ServedReach};
pub use records::{DocBytes, FOLD_AFTER, RecordRow, RecordWrite, StoredState};
pub use templates::parse_template;
pub use units::Unit;

use crate::store::commit::Mark;
use diaban_core::clock::Clock;
use diaban_core::db::{EmbeddedMigration, migrator};
use diaban_core::form::{FormCache, PublishError};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};
use std::collections::HashMap;
use std::sync::Arc;

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
    (18, "queue order", include_str!("../../migrations/sqlite/0018_queue_order.sql")),
    (19, "audit lists", include_str!("../../migrations/sqlite/0019_audit_lists.sql")),
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
    (10, "queue order", include_str!("../../migrations/postgres/0010_queue_order.sql")),
    (11, "audit lists", include_str!("../../migrations/postgres/0011_audit_lists.sql")),
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

/// How many loaded record documents the server keeps in memory (the most recently written).
pub const DOC_CACHE: usize = 512;

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

/// A database target fit for logs and errors: a URL's password left out.
fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &target[..scheme], &target[at..]),
        _ => target.to_owned(),
    }
}
