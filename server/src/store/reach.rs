//! What each device was sent: its scope under a token, and the records that came into it.

use super::{Db, DbError};

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

impl Db {
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
}
