//! A pull: the page of everything in the device's scope after its cursor, as of one point of
//! the change log.

use super::readable;
use crate::http::error::ApiError;
use crate::store::{AuthDevice, Db, DbError, Rescan};
use diaban_core::protocol::{PulledRecord, SyncResponse, UnitInfo};
use diaban_core::record::heads_from_hex;
use sqlx::{AnyConnection, Row};

/// How many records one response carries at most; the device asks again for more.
const PAGE_RECORDS: i64 = page_records!();

/// [`PAGE_RECORDS`] as a literal for SQL: SQLite 3.50 plans `LIMIT $n` worse than a constant
/// (the page statement took 160 µs instead of 28 µs).
macro_rules! page_records {
    () => {
        250
    };
}
use page_records;

/// A response stops adding documents once they pass this many bytes, about eight seconds of a
/// 2G link: a cut loses at most that much of a download, since the device commits every page
/// it receives; the device asks again for more.
const PAGE_BYTES: usize = 48 * 1024;

/// A record on a pull's page: id, snapshot (when the device needs the whole document),
/// heads (JSON), sequence, whether the whole document goes (1) or only chunks after `synced`.
type PageRow = (String, Option<Vec<u8>>, String, i64, i64);

/// The database's newest sequences (change log, units, templates) beside a page row (`None`
/// when the page is empty).
type MarkedRow = (i64, i64, i64, Option<String>, Option<Vec<u8>>, Option<String>, Option<i64>, Option<i64>);

/// The statement reading a pull's page with the newest sequences: records of the scope ($2)
/// outside hidden templates ($3) after the cursor ($1). `$whole` says whether a record goes
/// whole to a device holding its scope as of `synced` ($4): a new record, or one refolded
/// since. `$among` narrows the page further. (The lists are joined, not `IN (SELECT …)`:
/// SQLite builds a temporary table for each such list on every run. Rows come unordered.)
macro_rules! page_statement {
    ($whole:literal, $among:literal) => {
        concat!(
            "WITH marks (latest, units, templates) AS (SELECT ",
            crate::store::sequences!(),
            ")
             SELECT m.latest, m.units, m.templates, p.id, p.snapshot, p.heads, p.seq, p.whole
             FROM marks m LEFT JOIN (
               SELECT records.id, CASE WHEN ",
            $whole,
            " THEN (SELECT doc FROM record_snapshots s WHERE s.record_id = records.id) END AS snapshot,
                      heads, seq, CASE WHEN ",
            $whole,
            " THEN 1 ELSE 0 END AS whole
               FROM json_each($2) u JOIN records ON records.unit_code = u.value
               WHERE seq > $1 AND seq <= (SELECT latest FROM marks)
                 AND NOT EXISTS (SELECT 1 FROM json_each($3) h WHERE h.value = records.template_id)",
            $among,
            " ORDER BY seq LIMIT ",
            page_records!(),
            " + 1
             ) p ON TRUE"
        )
    };
}

/// Everything in scope after `cursor` a device holding its scope as of `synced` lacks, as of
/// one point of the change log. During the download of what came into its reach
/// (`rescan`), records of the units and templates that came go whole, and of the others only
/// what changed after `synced`.
///
/// The newest sequences and the page are read in one statement, so they agree. On SQLite that
/// is all the snapshot needed (one writer: whatever has a sequence up to the newest is
/// committed), and chunks are read after it, only up to each record's sequence on the page (a
/// record refolded meanwhile goes whole). PostgreSQL reads everything in one repeatable-read
/// transaction.
pub(super) async fn pull(
    db: &Db,
    scope: &[String],
    hidden: &[String],
    cursor: i64,
    synced: i64,
    rescan: Option<&Rescan>,
    pushed_heads: &[(&str, &[String])],
) -> Result<SyncResponse, ApiError> {
    let mut pg_tx: Option<sqlx::Transaction<'_, sqlx::Any>> = None;
    let mut kept: Option<crate::store::conns::Conn<'_>> = None;
    let tx: &mut AnyConnection = if db.backend == crate::store::Backend::Postgres {
        let tx = pg_tx.insert(db.pool.begin().await?);
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut **tx).await?;
        tx
    } else {
        kept.insert(db.conn().await?)
    };
    let json = |list: &[String]| serde_json::Value::from(list.to_vec()).to_string();
    let query = match rescan {
        None => sqlx::query_as(page_statement!("$4 = 0 OR snapshot_seq > $4", "")),
        Some(_) => sqlx::query_as(page_statement!(
            "$4 = 0 OR snapshot_seq > $4 OR unit_code IN (SELECT value FROM json_each($5))
               OR template_id IN (SELECT value FROM json_each($6))",
            " AND (seq > $4 OR unit_code IN (SELECT value FROM json_each($5))
               OR template_id IN (SELECT value FROM json_each($6)))"
        )),
    };
    let mut query = query.bind(cursor).bind(json(scope)).bind(json(hidden)).bind(synced);
    if let Some(rescan) = rescan {
        query = query.bind(json(&rescan.units)).bind(json(&rescan.templates));
    }
    let marked: Vec<MarkedRow> = query.fetch_all(&mut *tx).await?;
    let (max_seq, units_seq, templates_seq) = marked.first().map_or((0, 0, 0), |m| (m.0, m.1, m.2));
    let mut rows: Vec<PageRow> = marked
        .into_iter()
        .filter_map(|(_, _, _, id, snapshot, heads, seq, whole)| Some((id?, snapshot, heads?, seq?, whole?)))
        .collect();
    rows.sort_unstable_by_key(|row| row.3);
    let mut more = rows.len() as i64 > PAGE_RECORDS;
    let page = &rows[..rows.len().min(PAGE_RECORDS as usize)];
    // The device that just pushed exactly a record's state has it already (after an edit,
    // often the whole page): its chunks are not read.
    let held = |id: &str, heads: &[String]| pushed_heads.iter().any(|(rid, h)| *rid == id && same_set(h, heads));
    let page: Vec<(&PageRow, Vec<String>)> =
        page.iter().map(|row| (row, serde_json::from_str(&row.2).unwrap_or_default())).collect();
    let ids: Vec<&str> =
        page.iter().filter(|(row, heads)| !held(&row.0, heads)).map(|(row, _)| row.0.as_str()).collect();
    // A device holding a record as of `synced` needs its chunks after that. A whole record's
    // chunks all follow its snapshot, newer than `synced`, except for one that came into reach
    // during a download: it needs every chunk.
    let mut chunks = Db::chunks_of(tx, &ids, synced).await?;
    if rescan.is_some() {
        let came: Vec<&str> = page
            .iter()
            .filter(|(row, heads)| row.4 == 1 && !held(&row.0, heads))
            .map(|(row, _)| row.0.as_str())
            .collect();
        chunks.extend(Db::chunks_of(tx, &came, 0).await?);
    }

    let mut records = Vec::new();
    let mut bytes = 0;
    let mut last_seq = cursor;
    for ((id, snapshot, _, seq, whole), heads) in page {
        if bytes >= PAGE_BYTES {
            more = true;
            break;
        }
        last_seq = *seq;
        if held(id, &heads) {
            continue;
        }
        // Only what the page row stands for (a chunk committed after the page waits for the
        // next sync).
        let mut chunks = chunks.remove(id).unwrap_or_default();
        chunks.retain(|(s, _)| s <= seq);
        let pulled = if *whole == 1 || chunks.is_empty() {
            let mut doc = match snapshot {
                Some(snapshot) => snapshot.clone(),
                None => {
                    // Not expected (a record changed after `synced` has a chunk after it), but
                    // then the whole document goes, with every chunk.
                    let mut all = Db::chunks_of(tx, &[id.as_str()], 0).await?;
                    chunks = all.remove(id).unwrap_or_default();
                    chunks.retain(|(s, _)| s <= seq);
                    sqlx::query_scalar("SELECT doc FROM record_snapshots WHERE record_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            chunks.iter().for_each(|(_, data)| doc.extend_from_slice(data));
            PulledRecord { record_id: id.clone(), doc, heads: Vec::new() }
        } else {
            let heads = heads_from_hex(&heads).map_err(|e| DbError::Invalid(format!("stored heads of {id}: {e}")))?;
            let changes = chunks.into_iter().flat_map(|(_, data)| data).collect();
            PulledRecord { record_id: id.clone(), doc: changes, heads: heads.into_iter().map(|h| h.0).collect() }
        };
        bytes += pulled.doc.len();
        records.push(pulled);
    }
    let next_cursor = if more { last_seq } else { max_seq.max(cursor) };
    // Reference data up to the same point: templates published and units changed (read only
    // when there are any).
    let mut templates = Vec::new();
    if templates_seq > cursor {
        templates = sqlx::query("SELECT id, body FROM templates WHERE seq > $1 AND seq <= $2 ORDER BY seq")
            .bind(cursor)
            .bind(next_cursor)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter(|r| !hidden.contains(&r.get::<String, _>("id")))
            .map(|r| r.get::<String, _>("body"))
            .collect();
    }
    let mut units = Vec::new();
    if units_seq > cursor {
        units = sqlx::query(
            "SELECT code, name, level, COALESCE(parent_code, '') AS parent_code FROM units
             WHERE seq > $1 AND seq <= $2 AND code IN (SELECT value FROM json_each($3)) ORDER BY code",
        )
        .bind(cursor)
        .bind(next_cursor)
        .bind(serde_json::Value::from(scope.to_vec()).to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| UnitInfo {
            code: r.get("code"),
            name: r.get("name"),
            level: r.get("level"),
            parent_code: r.get("parent_code"),
        })
        .collect();
    }
    if let Some(tx) = pg_tx {
        tx.commit().await?;
    }
    Ok(SyncResponse {
        token_expires_at: 0,
        cursor: next_cursor,
        accepted: Vec::new(),
        rejected: Vec::new(),
        templates,
        records,
        more,
        units,
        reach: None,
    })
}

/// Whether anything after `cursor` would reach the device at its next sync: records in its
/// scope, templates it may read, units of its subtree.
pub async fn has_changes(db: &Db, device: &AuthDevice, cursor: i64) -> Result<bool, ApiError> {
    let marks = db.marks(&device.user.username).await?;
    let (scope, hidden) = readable(db, device, &marks).await?;
    let (scope, hidden) = (serde_json::Value::from(scope).to_string(), serde_json::Value::from(hidden).to_string());
    let found: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM records WHERE seq > $1
                   AND unit_code IN (SELECT value FROM json_each($2)) AND template_id NOT IN (SELECT value FROM json_each($3)))
              OR EXISTS (SELECT 1 FROM templates WHERE seq > $1 AND id NOT IN (SELECT value FROM json_each($3)))
              OR EXISTS (SELECT 1 FROM units WHERE seq > $1 AND code IN (SELECT value FROM json_each($2)))
         THEN 1 ELSE 0 END",
    )
    .bind(cursor)
    .bind(scope)
    .bind(hidden)
    .fetch_one(&db.pool)
    .await?;
    Ok(found == 1)
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}
