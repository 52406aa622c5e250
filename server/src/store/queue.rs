//! The review queue's lists: records filtered, sorted (newest change first) and paged in SQL,
//! with keyset pagination, so a page costs the same on the first page and the thousandth.

use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError};

/// Records one queue page shows.
pub const QUEUE_PAGE: i64 = 50;

/// Where a queue page starts: after the record changed at `updated_at` with this `id` (the
/// previous page's last row), in the queue's order (newest first, then id descending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueCursor {
    pub updated_at: i64,
    pub id: String,
}

impl QueueCursor {
    /// The cursor as a URL parameter: `<updated_at>~<id>`.
    pub fn encode(&self) -> String {
        format!("{}~{}", self.updated_at, self.id)
    }

    /// Reads [`QueueCursor::encode`]'s form back; anything else is `None`.
    pub fn decode(text: &str) -> Option<QueueCursor> {
        let (at, id) = text.split_once('~')?;
        let valid_id = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        Some(QueueCursor { updated_at: at.parse().ok()?, id: id.to_owned() }).filter(|_| valid_id)
    }
}

/// What the queue shows: the records of `units` not of a `hidden` template, narrowed by the
/// filters that are set.
#[derive(Clone, Debug, Default)]
pub struct QueueQuery<'a> {
    pub units: &'a [String],
    pub hidden: &'a [String],
    pub template: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub state: Option<&'a str>,
    pub period: Option<&'a str>,
    /// Only records with a proposed amendment waiting for a decision.
    pub amendments: bool,
    pub after: Option<QueueCursor>,
}

/// A record as a queue row: no values, no document.
#[derive(Clone, Debug)]
pub struct QueueRow {
    pub id: String,
    pub template_id: String,
    pub unit_code: String,
    pub unit_name: String,
    pub state: String,
    /// The creator's display name (their username if the account is gone).
    pub created_by: String,
    pub updated_at: i64,
    pub period: Option<String>,
}

/// One page of the queue, the number of records matching its filters, and where the next
/// page starts (`None` on the last).
#[derive(Clone, Debug)]
pub struct QueuePage {
    pub rows: Vec<QueueRow>,
    pub total: i64,
    pub next: Option<QueueCursor>,
}

/// The filters as SQL: fixed fragments, every value bound (`$3` onwards, in this order). The
/// statements are built from these fragments only, never from input (hence `AssertSqlSafe`).
fn conditions(query: &QueueQuery) -> (String, Vec<String>) {
    let mut sql = String::from(
        "r.unit_code IN (SELECT value FROM json_each($1)) AND r.template_id NOT IN (SELECT value FROM json_each($2))",
    );
    let mut binds = Vec::new();
    let filters = [
        ("r.template_id", query.template),
        ("r.unit_code", query.unit),
        ("r.state", query.state),
        ("r.period", query.period),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            binds.push(value.to_owned());
            sql.push_str(&format!(" AND {column} = ${}", binds.len() + 2));
        }
    }
    if query.amendments {
        sql.push_str(" AND EXISTS (SELECT 1 FROM amendments a WHERE a.record_id = r.id AND a.status = 'proposed')");
    }
    (sql, binds)
}

impl Db {
    /// A page of the queue and the count of records matching its filters: two statements, each
    /// walking an index in the queue's order or narrowed by a filter's index.
    pub async fn queue_page(&self, query: &QueueQuery<'_>) -> Result<QueuePage, DbError> {
        let (filter, binds) = conditions(query);
        let units = serde_json::Value::from(query.units.to_vec()).to_string();
        let hidden = serde_json::Value::from(query.hidden.to_vec()).to_string();

        let count_sql = format!("SELECT COUNT(*) FROM records r WHERE {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql)).bind(&units).bind(&hidden);
        for value in &binds {
            count = count.bind(value);
        }
        let total = count.fetch_one(&self.pool).await?;

        let n = binds.len() + 2;
        let after = match query.after {
            Some(_) => format!(" AND (r.updated_at < ${} OR (r.updated_at = ${} AND r.id < ${}))", n + 1, n + 1, n + 2),
            None => String::new(),
        };
        let page_sql = format!(
            "SELECT r.id, r.template_id, r.unit_code, n.name, r.state, COALESCE(u.display_name, r.created_by), r.updated_at, r.period
             FROM records r JOIN units n ON n.code = r.unit_code LEFT JOIN users u ON u.username = r.created_by
             WHERE {filter}{after} ORDER BY r.updated_at DESC, r.id DESC LIMIT {}",
            QUEUE_PAGE + 1
        );
        let mut page = sqlx::query(AssertSqlSafe(page_sql)).bind(&units).bind(&hidden);
        for value in &binds {
            page = page.bind(value);
        }
        if let Some(cursor) = &query.after {
            page = page.bind(cursor.updated_at).bind(&cursor.id);
        }
        let mut rows = page
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(QueueRow {
                    id: r.try_get(0)?,
                    template_id: r.try_get(1)?,
                    unit_code: r.try_get(2)?,
                    unit_name: r.try_get(3)?,
                    state: r.try_get(4)?,
                    created_by: r.try_get(5)?,
                    updated_at: r.try_get(6)?,
                    period: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let next = if rows.len() as i64 > QUEUE_PAGE {
            rows.truncate(QUEUE_PAGE as usize);
            rows.last().map(|r| QueueCursor { updated_at: r.updated_at, id: r.id.clone() })
        } else {
            None
        };
        Ok(QueuePage { rows, total, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote_and_nothing_else() {
        let cursor = QueueCursor { updated_at: 1_796_000_000, id: "0b7c-41aa".into() };
        assert_eq!(QueueCursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "~", "12", "12~", "x~abc", "12~a'b", "12~a b", &format!("1~{}", "a".repeat(65))] {
            assert_eq!(QueueCursor::decode(bad), None, "{bad:?}");
        }
    }
}
