//! Demo data for `diaban demo`: Sơn La (province code 14), a mountain border province, with its
//! 75 communes from the national list (codes per QĐ 19/2025/QĐ-TTg). Eight of them get a
//! working year: an officer and a commune lead each, about 200 people in the registry in every
//! status, hotspots, crop eradications, business inspections, propaganda sessions, and twelve
//! monthly reports (with their indicators computed from those records) in every review state,
//! plus the annual report, the yearly classification and the quarterly group reviews.
//!
//! Whatever day it starts, the demo shows everything it promises: the cases that must exist
//! (every reminder rule, every state of the completeness grid, every review state) are built
//! explicitly relative to today; only the rest is drawn at random. `server/tests/demo.rs`
//! checks this on a spread of pinned dates. Deterministic: a seeded generator and dates
//! counted back from today (the server's [`diaban_core::Clock`]), so every run on the same
//! day gives the same records (ids included).

mod registry;
mod reports;

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::ActorId;
use diaban_core::indicators::SourceRecord;
use diaban_core::record::{EventKind, FieldPath, RecordDoc, RecordMeta};
use diaban_core::template::Role;
use diaban_core::{FieldValue, Form};
use time::{Date, Duration};

use crate::domain::sync::Projection;
use crate::store::{Db, DbError};

/// (username, password, display name, role, unit code), printed by `diaban demo`.
pub const DEMO_USERS: &[(&str, &str, &str, Role, &str)] = &[
    ("admin", "quantri-2026", "Quản trị hệ thống", Role::Admin, "14"),
    ("kiemduyet", "kiemduyet-2026", "Hoàng Thị Thẩm Định", Role::Reviewer, "14"),
    ("canbo.muonggion", "canbo-2026", "Lò Văn Sáng", Role::FieldOfficer, "03694"),
    ("lanhdao.muonggion", "lanhdao-2026", "Cầm Văn Lãnh", Role::CommuneLead, "03694"),
    ("canbo.sopcop", "canbo-2026", "Lường Thị Mai", Role::FieldOfficer, "04231"),
    ("lanhdao.sopcop", "lanhdao-2026", "Tòng Văn Hưng", Role::CommuneLead, "04231"),
    ("canbo.tohieu", "canbo-2026", "Nguyễn Đức Toàn", Role::FieldOfficer, "03646"),
    ("lanhdao.tohieu", "lanhdao-2026", "Hoàng Thị Thu", Role::CommuneLead, "03646"),
    ("canbo.mocchau", "canbo-2026", "Đinh Văn Quý", Role::FieldOfficer, "03980"),
    ("lanhdao.mocchau", "lanhdao-2026", "Hà Thị Nhung", Role::CommuneLead, "03980"),
    ("canbo.longsap", "canbo-2026", "Sùng A Chư", Role::FieldOfficer, "04045"),
    ("lanhdao.longsap", "lanhdao-2026", "Mùa A Páo", Role::CommuneLead, "04045"),
    ("canbo.vanho", "canbo-2026", "Lò Thị Hoa", Role::FieldOfficer, "04048"),
    ("lanhdao.vanho", "lanhdao-2026", "Vì Văn Thắng", Role::CommuneLead, "04048"),
    ("canbo.doanket", "canbo-2026", "Quàng Văn Đông", Role::FieldOfficer, "04000"),
    ("lanhdao.doanket", "lanhdao-2026", "Lường Văn Kiên", Role::CommuneLead, "04000"),
    ("canbo.chiengson", "canbo-2026", "Cầm Thị Ngọc", Role::FieldOfficer, "03985"),
    ("lanhdao.chiengson", "lanhdao-2026", "Tòng Văn Minh", Role::CommuneLead, "03985"),
];

/// The demo communes: (code, officer, lead, population, rural).
const COMMUNES: &[(&str, &str, &str, i64, bool)] = &[
    ("03694", "canbo.muonggion", "lanhdao.muonggion", 11_850, true),
    ("04231", "canbo.sopcop", "lanhdao.sopcop", 4_920, true),
    ("03646", "canbo.tohieu", "lanhdao.tohieu", 24_300, false),
    ("03980", "canbo.mocchau", "lanhdao.mocchau", 21_760, false),
    ("04045", "canbo.longsap", "lanhdao.longsap", 3_150, true),
    ("04048", "canbo.vanho", "lanhdao.vanho", 10_480, true),
    ("04000", "canbo.doanket", "lanhdao.doanket", 8_650, true),
    ("03985", "canbo.chiengson", "lanhdao.chiengson", 9_870, true),
];

const REVIEWER: &str = "kiemduyet";
const PEOPLE_PER_COMMUNE: usize = 25;

fn invalid(e: impl std::fmt::Display) -> DbError {
    DbError::Invalid(format!("demo: {e}"))
}

/// SplitMix64: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn word(&mut self, items: &[&'static str]) -> &'static str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn iso(d: Date) -> String {
    diaban_core::clock::iso(d)
}

fn days(d: Date, n: i64) -> Date {
    d.checked_add(Duration::days(n)).unwrap_or(d)
}

fn add_months(d: Date, n: i64) -> Date {
    let index = d.year() as i64 * 12 + d.month() as i64 - 1 + n;
    let (year, month) = (index.div_euclid(12) as i32, (index.rem_euclid(12) + 1) as u8);
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    let day = d.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day).unwrap_or(d)
}

/// 09:00 in Vietnam on `d`, as Unix seconds.
fn at(d: Date) -> i64 {
    diaban_core::clock::nine_am(d)
}

fn text(s: impl Into<String>) -> FieldValue {
    FieldValue::Text(s.into())
}

fn date(d: Date) -> FieldValue {
    FieldValue::Date(iso(d))
}

fn choice(s: &str) -> FieldValue {
    FieldValue::Choice(s.into())
}

/// A management period of a demo person: status, start, months, end, end reason, relapse.
type PeriodRow = (&'static str, Date, Option<i64>, Option<Date>, Option<&'static str>, bool);

/// A record being written.
struct Draft {
    doc: RecordDoc,
    form: Arc<Form>,
    ts: i64,
}

impl Draft {
    fn set(&mut self, name: &str, value: FieldValue) -> Result<&mut Self, DbError> {
        self.doc.set_field(&FieldPath::top(name), &value, self.ts).map_err(invalid)?;
        Ok(self)
    }

    fn row(&mut self, group: &str, values: Vec<(&str, FieldValue)>) -> Result<&mut Self, DbError> {
        let id = self.form.add_row(&mut self.doc, &FieldPath::top(group), self.ts).map_err(invalid)?;
        for (name, value) in values {
            let path = FieldPath { rows: vec![(group.to_owned(), id.clone())], name: name.to_owned() };
            self.doc.set_field(&path, &value, self.ts).map_err(invalid)?;
        }
        Ok(self)
    }

    fn event(&mut self, kind: EventKind, by: &str, comment: Option<&str>, when: Date) -> Result<&mut Self, DbError> {
        self.doc.append_event(kind, by, comment, at(when)).map_err(invalid)?;
        Ok(self)
    }
}

struct Demo {
    rng: Rng,
    forms: BTreeMap<String, Arc<Form>>,
    done: Vec<(RecordDoc, Projection)>,
    /// Values of the written records, by template, for the reports' indicators.
    sources: BTreeMap<String, Vec<SourceRecord>>,
    today: Date,
}

impl Demo {
    fn start(
        &mut self,
        template: &str,
        unit: &str,
        by: &str,
        period: Option<String>,
        on: Date,
    ) -> Result<Draft, DbError> {
        let form = self.forms.get(template).cloned().ok_or_else(|| invalid(format!("{template} is not published")))?;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.rng.next().to_le_bytes());
        id[8..].copy_from_slice(&self.rng.next().to_le_bytes());
        let mut actor = [0u8; 16];
        actor[..8].copy_from_slice(&self.rng.next().to_le_bytes());
        actor[8..].copy_from_slice(&self.rng.next().to_le_bytes());
        let meta = RecordMeta {
            record_id: uuid::Builder::from_random_bytes(id).into_uuid().to_string(),
            template_id: template.into(),
            template_version: form.template().version,
            unit_code: unit.into(),
            created_by: by.into(),
            created_at: at(on),
            device_id: "demo".into(),
            period,
        };
        let doc = form.new_record(&meta, ActorId::from(&actor[..]), at(on)).map_err(invalid)?;
        Ok(Draft { doc, form, ts: at(on) })
    }

    fn finish(&mut self, mut draft: Draft) -> Result<(), DbError> {
        let projection = crate::domain::sync::project(&mut draft.doc, &draft.form, self.today).map_err(invalid)?;
        if let Ok(serde_json::Value::Object(values)) =
            serde_json::from_str::<serde_json::Value>(&projection.values_json)
        {
            self.sources.entry(projection.meta.template_id.clone()).or_default().push(SourceRecord {
                id: projection.meta.record_id.clone(),
                unit_code: projection.meta.unit_code.clone(),
                values,
            });
        }
        self.done.push((draft.doc, projection));
        Ok(())
    }
}

const FAMILY: &[&str] =
    &["Lò", "Lường", "Cầm", "Quàng", "Tòng", "Vì", "Giàng", "Sùng", "Mùa", "Hoàng", "Nguyễn", "Đinh", "Hà"];
const MALE: &[&str] = &[
    "Văn Sơn",
    "Văn Pỏm",
    "Văn Hùng",
    "A Páo",
    "A Chư",
    "Văn Dũng",
    "Văn Tuấn",
    "A Tủa",
    "Văn Xuân",
    "Đức Anh",
    "Văn Bình",
    "A Dua",
];
const FEMALE: &[&str] = &["Thị Mai", "Thị Lan", "Thị Ánh", "Thị Hoa", "Thị Xuân", "Thị Dung", "Thị Pàng", "Thị Hương"];
const VILLAGES: &[&str] = &[
    "Bản Nà Sản",
    "Bản Co Muông",
    "Bản Huổi Lếch",
    "Bản Pá Liềng",
    "Bản Phiêng Lanh",
    "Tổ dân phố 3",
    "Bản Hua Pàu",
    "Bản Nong Hẹ",
];
const ETHNIC: &[&str] = &["Thái", "H'Mông", "Kinh", "Mường", "Khơ Mú"];

/// Seeds the demo once, dated from the server's today; a database that already has users is
/// left alone.
pub async fn seed(db: &Db) -> Result<bool, DbError> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?;
    if users > 0 {
        return Ok(false);
    }
    prepare(db).await?;
    let records = build(db, db.clock.today()).await?;
    let now = db.clock.now();
    db.write(async |tx| {
        for (mut doc, projection) in records {
            crate::domain::sync::write_record(tx, &mut doc, &projection, None, None, None, now)
                .await?
                .ok_or_else(|| DbError::Invalid("a demo record exists already".into()))?;
        }
        Ok(())
    })
    .await?;
    db.audit(None, SEEDED, &iso(db.clock.today())).await?;
    Ok(true)
}

/// The audit action that notes the day the demo was seeded (its dates count back from it).
const SEEDED: &str = "seed_demo";

/// The day the demo in `db` was seeded, if it was.
pub async fn seeded_on(db: &Db) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 ORDER BY at DESC LIMIT 1")
        .bind(SEEDED)
        .fetch_optional(&db.pool)
        .await?)
}

/// What the demo's records need: the national unit list, the demo users, the template pack.
pub async fn prepare(db: &Db) -> Result<(), DbError> {
    crate::domain::units::import_national_if_empty(db).await?;
    for (username, password, name, role, unit) in DEMO_USERS {
        db.create_user(username, name, password, *role, unit).await?;
    }
    crate::domain::pack::publish(db).await
}

/// What the demo's records are built from: the published forms and the province's other
/// communes, read once from a database where [`prepare`] ran.
pub struct Inputs {
    forms: BTreeMap<String, Arc<Form>>,
    other_communes: Vec<String>,
}

impl Inputs {
    pub async fn read(db: &Db) -> Result<Inputs, DbError> {
        let mut forms = BTreeMap::new();
        for template in db.published_templates().await? {
            if let Some(form) = db.form(&template.id, template.version).await? {
                forms.insert(template.id.clone(), form);
            }
        }
        let scope = db.unit_scope("14").await?;
        let other_communes = db
            .communes_in(&scope)
            .await?
            .into_iter()
            .map(|u| u.code)
            .filter(|c| !COMMUNES.iter().any(|(code, ..)| code == c))
            .collect();
        Ok(Inputs { forms, other_communes })
    }
}

/// Every demo record as of `today` with its projection, not written.
pub async fn build(db: &Db, today: Date) -> Result<Vec<(RecordDoc, Projection)>, DbError> {
    build_from(&Inputs::read(db).await?, today)
}

/// [`build`] from inputs read already (CPU only: several days can be built side by side).
pub fn build_from(inputs: &Inputs, today: Date) -> Result<Vec<(RecordDoc, Projection)>, DbError> {
    let forms = inputs.forms.clone();
    let mut demo = Demo { rng: Rng(0x5014_2026), forms, done: Vec::new(), sources: BTreeMap::new(), today };
    registry::original_sessions(&mut demo)?;
    for (i, commune) in COMMUNES.iter().enumerate() {
        registry::people(&mut demo, i, commune)?;
        registry::places(&mut demo, i, commune)?;
        registry::events(&mut demo, i, commune)?;
    }
    registry::moved_person(&mut demo)?;
    for (i, commune) in COMMUNES.iter().enumerate() {
        reports::reports(&mut demo, i, commune)?;
    }
    // The province's other communes report too (without registry data in the demo), so the
    // grid shows a province at work rather than 67 late communes.
    for (i, code) in inputs.other_communes.iter().enumerate() {
        reports::other_reports(&mut demo, i, code)?;
    }
    Ok(demo.done)
}
