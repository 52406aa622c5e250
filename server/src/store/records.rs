//! Records: their rows, their Automerge documents (a snapshot plus appended chunks), and the
//! guarded write every change goes through.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, DbError, log_change};
use crate::store::commit::{Mark, with_marks};

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

/// The columns [`record_row`] reads: a record's row (`r`) and its unit's name (`n`), for
/// statements that go on with `WHERE`.
macro_rules! record_rows {
    () => {
        "SELECT r.id, r.template_id, r.template_version, r.unit_code, n.name AS unit_name, r.state, r.created_by,
           r.created_at, r.updated_at, r.values_json, r.period
         FROM records r JOIN units n ON n.code = r.unit_code"
    };
}
pub(super) use record_rows;

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

pub(super) fn record_row(r: &AnyRow) -> Result<RecordRow, DbError> {
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

impl Db {
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

    /// (unit code, period, state) of a periodic template's records in the given units, for the
    /// given periods.
    pub async fn period_states(
        &self,
        template_id: &str,
        periods: &[String],
        units: &[String],
    ) -> Result<Vec<(String, String, String)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT unit_code, period, state FROM records
             WHERE template_id = $1 AND period IN (SELECT value FROM json_each($2))
               AND unit_code IN (SELECT value FROM json_each($3))",
        )
        .bind(template_id)
        .bind(serde_json::Value::from(periods.to_vec()).to_string())
        .bind(serde_json::Value::from(units.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?)
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
        let row = sqlx::query(concat!(
            record_rows!(),
            " WHERE r.id = $1 AND r.unit_code IN (SELECT value FROM json_each($2))"
        ))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Unit;

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
