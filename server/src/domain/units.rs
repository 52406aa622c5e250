//! Administrative units from CSV: the national list shipped with the server, or a newer one.
//! Every row is checked (codes, levels, parents, dates) before anything is written, and the
//! whole file goes in one transaction.

use std::collections::HashSet;

use serde::Deserialize;

use crate::store::{Db, DbError, Unit};

/// The 34 provinces and 3,321 communes from 1 July 2025 (see `server/data/README.md`).
pub const NATIONAL_2025: &str = include_str!("../../data/units-2025.csv");

#[derive(Debug, Deserialize)]
struct Row {
    code: String,
    name: String,
    level: String,
    #[serde(default)]
    parent_code: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_to: String,
    #[serde(default)]
    predecessors: String,
}

/// A unit with its history, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRecord {
    pub unit: Unit,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
    pub predecessors: Vec<String>,
}

/// Parses and checks a units CSV; errors name the line.
pub fn parse(csv_text: &str, known: &HashSet<String>) -> Result<Vec<UnitRecord>, DbError> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut out: Vec<UnitRecord> = Vec::new();
    let mut codes: HashSet<String> = known.clone();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let line = i + 2;
        let bad = |m: String| DbError::Invalid(format!("line {line}: {m}"));
        let row = row.map_err(|e| bad(e.to_string()))?;
        let digits = match row.level.as_str() {
            "province" => 2,
            "district" => 3,
            "commune" | "village" => 5,
            other => return Err(bad(format!("level {other:?} is not province, district, commune or village"))),
        };
        if row.level != "village" && (row.code.len() != digits || !row.code.chars().all(|c| c.is_ascii_digit())) {
            return Err(bad(format!("a {} code has {digits} digits (got {:?})", row.level, row.code)));
        }
        if row.name.trim().is_empty() {
            return Err(bad("the name is empty".into()));
        }
        let parent = Some(row.parent_code.trim().to_owned()).filter(|p| !p.is_empty());
        if let Some(p) = &parent
            && !codes.contains(p)
        {
            return Err(bad(format!("parent {p} is not defined above or in the database")));
        }
        if row.level != "province" && row.level != "district" && parent.is_none() {
            return Err(bad("a commune or village needs a parent".into()));
        }
        let date = |s: &str| -> Result<Option<String>, DbError> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                .map(|_| Some(s.to_owned()))
                .map_err(|_| bad(format!("{s:?} is not a date YYYY-MM-DD")))
        };
        let predecessors: Vec<String> =
            row.predecessors.split(';').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
        if let Some(p) = predecessors.iter().find(|p| !codes.contains(*p)) {
            return Err(bad(format!("predecessor {p} is not defined above or in the database")));
        }
        if !codes.insert(row.code.clone()) && !known.contains(&row.code) {
            return Err(bad(format!("code {} appears twice", row.code)));
        }
        out.push(UnitRecord {
            unit: Unit { code: row.code, name: row.name.trim().to_owned(), level: row.level, parent_code: parent },
            valid_from: date(&row.valid_from)?,
            valid_to: date(&row.valid_to)?,
            predecessors,
        });
    }
    Ok(out)
}

/// Imports a units CSV; returns how many units it holds.
pub async fn import(db: &Db, csv_text: &str) -> Result<usize, DbError> {
    let known: HashSet<String> =
        sqlx::query_scalar("SELECT code FROM units").fetch_all(&db.pool).await?.into_iter().collect();
    let records = parse(csv_text, &known)?;
    db.write(async |tx| {
        for r in &records {
            sqlx::query(
                "INSERT INTO units (code, name, level, parent_code, valid_from, valid_to) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT(code) DO UPDATE SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code,
                   valid_from = excluded.valid_from, valid_to = excluded.valid_to",
            )
            .bind(&r.unit.code)
            .bind(&r.unit.name)
            .bind(&r.unit.level)
            .bind(&r.unit.parent_code)
            .bind(&r.valid_from)
            .bind(&r.valid_to)
            .execute(&mut *tx)
            .await?;
            for p in &r.predecessors {
                sqlx::query("INSERT INTO unit_predecessors (code, predecessor_code) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(&r.unit.code)
                    .bind(p)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(records.len())
}

/// Imports the national list when the server has no units yet.
pub async fn import_national_if_empty(db: &Db) -> Result<(), DbError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM units").fetch_one(&db.pool).await?;
    if count == 0 {
        import(db, NATIONAL_2025).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_national_list_has_34_provinces_and_3321_communes() {
        let units = parse(NATIONAL_2025, &HashSet::new()).unwrap();
        assert_eq!(units.iter().filter(|u| u.unit.level == "province").count(), 34);
        assert_eq!(units.iter().filter(|u| u.unit.level == "commune").count(), 3321);
        let son_la = units.iter().find(|u| u.unit.code == "14").unwrap();
        assert_eq!(son_la.unit.name, "Tỉnh Sơn La");
        let muong_gion = units.iter().find(|u| u.unit.code == "03694").unwrap();
        assert_eq!(
            (muong_gion.unit.name.as_str(), muong_gion.unit.parent_code.as_deref()),
            ("Xã Mường Giôn", Some("14"))
        );
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let header = "code,name,level,parent_code,valid_from,valid_to,predecessors\n";
        let cases = [
            ("1,Tỉnh X,province,,,,\n", "line 2: a province code has 2 digits"),
            ("01,Tỉnh X,region,,,,\n", "line 2: level \"region\""),
            ("00001,Xã Y,commune,99,,,\n", "line 2: parent 99 is not defined"),
            ("01,Tỉnh X,province,,2025-13-01,,\n", "line 2: \"2025-13-01\" is not a date"),
            ("01,Tỉnh X,province,,,,\n01,Tỉnh X,province,,,,\n", "line 3: code 01 appears twice"),
            ("01,Tỉnh X,province,,,,\n00001,Xã Y,commune,01,,,777\n", "line 3: predecessor 777"),
        ];
        for (rows, expected) in cases {
            let err = parse(&format!("{header}{rows}"), &HashSet::new()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }

    #[test]
    fn history_rows_keep_old_units_with_their_end_dates() {
        let csv = "code,name,level,parent_code,valid_from,valid_to,predecessors\n\
                   29,Tỉnh Sơn La (cũ),province,,1991-01-01,2025-06-30,\n\
                   14,Tỉnh Sơn La,province,,2025-07-01,,29\n";
        let units = parse(csv, &HashSet::new()).unwrap();
        assert_eq!(units[0].valid_to.as_deref(), Some("2025-06-30"));
        assert_eq!(units[1].predecessors, vec!["29".to_string()]);
    }
}
