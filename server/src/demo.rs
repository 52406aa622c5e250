//! Demo data for `diaban demo`: Sơn La (province code 14), a mountain border province, with its
//! 75 communes from the national list (codes per QĐ 19/2025/QĐ-TTg). Eight of them get a
//! working year: an officer and a commune lead each, about 200 people in the registry in every
//! status, hotspots, crop eradications, business inspections, propaganda sessions, and twelve
//! monthly reports (with their indicators computed from those records) in every review state,
//! plus the annual report, the yearly classification and the quarterly group reviews.
//!
//! Deterministic: a seeded generator and dates counted back from today, so every run on the
//! same day gives the same records (ids included).

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::ActorId;
use diaban_core::indicators::{SourceRecord, Sources};
use diaban_core::record::{EventKind, FieldPath, RecordDoc, RecordMeta};
use diaban_core::template::Role;
use diaban_core::{FieldValue, Form};
use time::{Date, Duration};

use crate::db::{Db, DbError};

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
    d.midnight().assume_offset(time::macros::offset!(+7)).unix_timestamp() + 9 * 3600
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
    done: Vec<(RecordDoc, crate::sync::Projection)>,
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
        let projection = crate::sync::project(&mut draft.doc, &draft.form).map_err(invalid)?;
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

/// Seeds the demo once; a database that already has users is left alone.
pub async fn seed(db: &Db) -> Result<bool, DbError> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?;
    if users > 0 {
        return Ok(false);
    }
    crate::units::import_national_if_empty(db).await?;
    for (username, password, name, role, unit) in DEMO_USERS {
        db.create_user(username, name, password, *role, unit).await?;
    }
    crate::pack::publish(db).await?;
    let mut forms = BTreeMap::new();
    for template in db.published_templates().await? {
        if let Some(form) = db.form(&template.id, template.version).await? {
            forms.insert(template.id.clone(), form);
        }
    }
    let today = diaban_core::clock::today();
    let mut demo = Demo { rng: Rng(0x5014_2026), forms, done: Vec::new(), sources: BTreeMap::new(), today };
    original_sessions(&mut demo)?;
    for (i, commune) in COMMUNES.iter().enumerate() {
        people(&mut demo, i, commune)?;
        places(&mut demo, i, commune)?;
        events(&mut demo, i, commune)?;
    }
    moved_person(&mut demo)?;
    for (i, commune) in COMMUNES.iter().enumerate() {
        reports(&mut demo, i, commune)?;
    }
    // The province's other communes report too (without registry data in the demo), so the
    // grid shows a province at work rather than 67 late communes.
    let scope = db.unit_scope("14").await?;
    let others: Vec<String> = db
        .communes_in(&scope)
        .await?
        .into_iter()
        .map(|u| u.code)
        .filter(|c| !COMMUNES.iter().any(|(code, ..)| code == c))
        .collect();
    for (i, code) in others.iter().enumerate() {
        other_reports(&mut demo, i, code)?;
    }
    let done = std::mem::take(&mut demo.done);
    db.write(async |tx| {
        for (mut doc, projection) in done {
            crate::sync::write_record(tx, &mut doc, &projection, None, None, None)
                .await?
                .ok_or_else(|| DbError::Invalid("a demo record exists already".into()))?;
        }
        Ok(())
    })
    .await?;
    Ok(true)
}

/// The first demo's four sessions, kept as they were.
fn original_sessions(demo: &mut Demo) -> Result<(), DbError> {
    let today = demo.today;
    let sessions = [
        ("03694", "canbo.muonggion", 48, "Nhà văn hóa bản Nà Sản", "residents", 85, true),
        ("03694", "canbo.muonggion", 34, "Trường PTDTBT THCS Mường Giôn", "students", 420, true),
        ("03694", "canbo.muonggion", 14, "Chợ phiên trung tâm xã", "ethnic_minorities", 137, false),
        ("04231", "canbo.sopcop", 10, "Hội trường UBND xã Sốp Cộp", "youth", 120, true),
    ];
    for (unit, officer, ago, place, audience, participants, submitted) in sessions {
        let on = days(today, -ago);
        let mut d = demo.start("propaganda_session", unit, officer, None, on)?;
        d.set("session_date", date(on))?
            .set("place", text(place))?
            .set("audience_group", choice(audience))?
            .set("participants", FieldValue::Integer(participants))?;
        if submitted {
            d.event(EventKind::Submit, officer, None, on)?;
        }
        demo.finish(d)?;
    }
    Ok(())
}

/// About 25 people per commune, spread over the statuses of the registry.
fn people(demo: &mut Demo, ci: usize, (unit, officer, _, _, _): &(&str, &str, &str, i64, bool)) -> Result<(), DbError> {
    let today = demo.today;
    for k in 0..PEOPLE_PER_COMMUNE {
        let male = demo.rng.chance(82);
        let name =
            format!("{} {}", demo.rng.pick(FAMILY), if male { demo.rng.pick(MALE) } else { demo.rng.pick(FEMALE) });
        let age = demo.rng.range(19, 55);
        let born = days(add_months(today, -12 * age), -demo.rng.range(0, 360));
        let scenario = (k + ci) % 10;
        let created = days(today, -demo.rng.range(400, 700));
        let mut d = demo.start("person_record", unit, officer, None, created)?;
        d.set("full_name", text(name))?
            .set("sex", choice(if male { "male" } else { "female" }))?
            .set("birth_date", date(born))?
            .set("ethnicity", text(*demo.rng.pick(ETHNIC)))?
            .set("residence_kind", choice(if demo.rng.chance(12) { "temporary" } else { "permanent" }))?
            .set("address", text(*demo.rng.pick(VILLAGES)))?
            .set("occupation", text(*demo.rng.pick(&["Làm nương", "Lao động tự do", "Lái xe", "Không nghề nghiệp"])))?;
        let options: [&[&str]; 5] =
            [&["heroin"], &["methamphetamine"], &["methamphetamine", "mdma"], &["opium"], &["cannabis"]];
        let drugs = *demo.rng.pick(&options);
        d.set("drug_types", FieldValue::Choices(drugs.iter().map(|s| (*s).to_owned()).collect()))?;
        // (status, start, months, end, end reason, relapse) rows in time order.
        let mut rows: Vec<PeriodRow> = Vec::new();
        match scenario {
            0..=2 => rows.push(("user_managed", days(today, -demo.rng.range(10, 330)), Some(12), None, None, false)),
            3 => {
                let start = days(today, -demo.rng.range(400, 560));
                rows.push((
                    "user_managed",
                    start,
                    Some(12),
                    Some(days(add_months(start, 12), -1)),
                    Some("expired_no_use"),
                    false,
                ));
            }
            4 => {
                let s = days(today, -demo.rng.range(60, 170));
                rows.push(("addicted", s, None, Some(days(s, 9)), Some("completed"), false));
                rows.push(("rehab_home", days(s, 10), Some(*demo.rng.pick(&[6, 9])), None, None, false));
            }
            5 => rows.push(("rehab_facility", days(today, -demo.rng.range(30, 170)), Some(12), None, None, false)),
            6 => rows.push(("methadone", days(today, -demo.rng.range(100, 900)), None, None, None, false)),
            7 => rows.push(("compulsory_rehab", days(today, -demo.rng.range(30, 600)), Some(24), None, None, false)),
            8 => {
                let months = *demo.rng.pick(&[12, 24]);
                let start = days(today, -demo.rng.range(20, 330));
                let before = if months == 24 { "compulsory_rehab" } else { "rehab_home" };
                let rehab_start = add_months(start, -if months == 24 { 24 } else { 6 });
                let rehab_months = if months == 24 { 24 } else { 6 };
                rows.push((before, rehab_start, Some(rehab_months), Some(days(start, -1)), Some("completed"), false));
                rows.push(("post_rehab", start, Some(months), None, None, false));
            }
            _ => rows.push(("addicted", days(today, -demo.rng.range(5, 300)), None, None, None, demo.rng.chance(50))),
        }
        let mut checked_from = None;
        for (status, start, months, end, reason, relapse) in &rows {
            let mut values = vec![
                ("status", choice(status)),
                ("start_date", date(*start)),
                ("decision_no", text(format!("{}/QĐ-UBND", demo.rng.range(12, 480)))),
                ("decision_date", date(days(*start, -demo.rng.range(0, 3)))),
            ];
            if let Some(m) = months {
                values.push(("duration_months", FieldValue::Integer(*m)));
            }
            if *status == "addicted" {
                values.push(("relapse", FieldValue::Boolean(*relapse)));
            }
            if matches!(*status, "rehab_facility" | "compulsory_rehab" | "methadone") {
                values.push(("facility", text("Cơ sở cai nghiện ma túy tỉnh Sơn La")));
            }
            if let (Some(e), Some(r)) = (end, reason) {
                values.push(("end_date", date(*e)));
                values.push(("end_reason", choice(r)));
            } else if matches!(*status, "user_managed" | "post_rehab") {
                checked_from = Some(*start);
            }
            d.row("periods", values)?;
        }
        // Monthly residence checks, the latest sometimes missed (the reminders show them).
        if let Some(start) = checked_from {
            let skip_last = demo.rng.chance(30);
            let mut on = add_months(start, 1);
            let mut checks = Vec::new();
            while on <= today {
                checks.push(on);
                on = add_months(on, 1);
            }
            if skip_last {
                checks.pop();
            }
            for on in checks.iter().rev().take(10).rev() {
                let home = demo.rng.chance(92);
                d.row("checks", vec![("check_date", date(*on)), ("found_at_home", FieldValue::Boolean(home))])?;
            }
            let test_on = days(today, -demo.rng.range(5, 60));
            if test_on >= start {
                let positive = demo.rng.chance(10);
                d.row(
                    "tests",
                    vec![
                        ("test_date", date(test_on)),
                        ("test_kind", choice(if demo.rng.chance(50) { "surprise" } else { "periodic" })),
                        ("test_result", choice(if positive { "positive" } else { "negative" })),
                    ],
                )?;
            }
        }
        d.row(
            "team",
            vec![
                ("member_name", text(format!("Công an xã ({officer})"))),
                ("member_role", choice("police_leader")),
                ("counsellor", FieldValue::Boolean(false)),
            ],
        )?
        .row(
            "team",
            vec![
                ("member_name", text(format!("Trưởng {}", demo.rng.pick(VILLAGES).to_lowercase()))),
                ("member_role", choice("village_rep")),
                ("counsellor", FieldValue::Boolean(true)),
            ],
        )?;
        demo.finish(d)?;
    }
    Ok(())
}

/// A user who moved from Mường Giôn to Sốp Cộp last month: the old commune closes its period,
/// the new one opens a record with the remainder.
fn moved_person(demo: &mut Demo) -> Result<(), DbError> {
    let today = demo.today;
    let start = days(today, -200);
    let moved = days(today, -25);
    for (unit, officer) in [("03694", "canbo.muonggion"), ("04231", "canbo.sopcop")] {
        let mut d = demo.start("person_record", unit, officer, None, if unit == "03694" { start } else { moved })?;
        d.set("full_name", text("Lò Văn Chuyển"))?
            .set("sex", choice("male"))?
            .set("birth_date", date(add_months(today, -12 * 27)))?
            .set("residence_kind", choice("permanent"))?
            .set(
                "address",
                text(if unit == "03694" {
                    "Bản Nà Sản, xã Mường Giôn"
                } else {
                    "Bản Nà Vai, xã Sốp Cộp"
                }),
            )?;
        let mut period = vec![
            ("status", choice("user_managed")),
            ("start_date", date(start)),
            ("duration_months", FieldValue::Integer(12)),
            ("decision_no", text("57/QĐ-UBND")),
        ];
        if unit == "03694" {
            period.push(("end_date", date(days(moved, -1))));
            period.push(("end_reason", choice("moved_away")));
        }
        if unit == "04231" {
            d.row("checks", vec![("check_date", date(days(moved, 2))), ("found_at_home", FieldValue::Boolean(true))])?;
        }
        d.row("periods", period)?.row(
            "moves",
            vec![
                ("moved_on", date(moved)),
                ("from_unit", text("03694")),
                ("to_unit", text("04231")),
                ("file_sent_on", date(days(moved, 3))),
            ],
        )?;
        demo.finish(d)?;
    }
    Ok(())
}

/// Hotspots and crop eradications.
fn places(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, _, _, rural): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
    let today = demo.today;
    // Eliminated, with monthly re-checks since.
    let found = days(today, -demo.rng.range(240, 320));
    let eliminated = days(found, demo.rng.range(60, 120));
    let mut d = demo.start("hotspot", unit, officer, None, found)?;
    d.set("name", text(format!("Lán tạm ven suối {}", demo.rng.pick(VILLAGES))))?
        .set("kind", choice("use"))?
        .set("address", text(*demo.rng.pick(VILLAGES)))?
        .set("found_on", date(found))?
        .set("found_source", choice("tip"))?
        .set("confirmed_on", date(days(found, 4)))?
        .set("eliminated_on", date(eliminated))?
        .set("elimination_basis", text(format!("Khởi tố vụ án số {}/2026, triệt phá điểm", demo.rng.range(3, 90))))?;
    let mut on = add_months(eliminated, 1);
    while on <= today {
        let re_emerged = ci % 4 == 1 && add_months(on, 1) > today;
        d.row(
            "rechecks",
            vec![
                ("recheck_date", date(on)),
                ("recheck_result", choice(if re_emerged { "re_emerged" } else { "holds" })),
            ],
        )?;
        on = add_months(on, 1);
    }
    demo.finish(d)?;
    // Active.
    let found = days(today, -demo.rng.range(20, 200));
    let mut d = demo.start("hotspot", unit, officer, None, found)?;
    d.set("name", text(format!("Nhà trọ khu {}", demo.rng.pick(VILLAGES))))?
        .set("kind", choice(demo.rng.word(&["use", "retail", "mixed"])))?
        .set("address", text(*demo.rng.pick(VILLAGES)))?
        .set("found_on", date(found))?
        .set("found_source", choice(demo.rng.word(&["patrol", "tip", "case"])))?
        .set("confirmed_on", date(days(found, 7)))?;
    demo.finish(d)?;
    // Crops, in the mountain communes, in the poppy season.
    if *rural {
        for _ in 0..demo.rng.range(1, 2) {
            let found = days(today, -demo.rng.range(200, 330));
            let mut d = demo.start("crop_eradication", unit, officer, None, found)?;
            d.set("found_on", date(found))?
                .set("destroyed_on", date(days(found, 1)))?
                .set("place", text(format!("Nương {}", demo.rng.pick(VILLAGES))))?
                .set(
                    "location",
                    FieldValue::Geopoint {
                        lat: 21.1 + ci as f64 * 0.05,
                        lon: 103.4 + ci as f64 * 0.07,
                        accuracy: Some(8.0),
                    },
                )?;
            for _ in 0..demo.rng.range(1, 3) {
                let plants = demo.rng.range(150, 1800);
                d.row(
                    "finds",
                    vec![
                        ("species", choice(if demo.rng.chance(85) { "poppy" } else { "cannabis" })),
                        ("plants", FieldValue::Integer(plants)),
                        ("area_m2", FieldValue::Decimal((plants as f64 * 0.25).round())),
                    ],
                )?;
            }
            d.row("witnesses", vec![("witness_name", text("Trưởng bản")), ("witness_role", text("Đại diện thôn"))])?
                .row(
                    "witnesses",
                    vec![("witness_name", text("Cán bộ Đồn Biên phòng")), ("witness_role", text("Bộ đội Biên phòng"))],
                )?;
            d.event(EventKind::Submit, officer, None, days(found, 2))?;
            demo.finish(d)?;
        }
    }
    Ok(())
}

/// Inspections and propaganda sessions over the last twelve months.
fn events(demo: &mut Demo, ci: usize, (unit, officer, _, _, _): &(&str, &str, &str, i64, bool)) -> Result<(), DbError> {
    let today = demo.today;
    let kinds = ["karaoke", "guesthouse", "internet", "massage", "bar"];
    for k in 0..4 {
        let on = days(today, -(k * 90 + demo.rng.range(3, 80)));
        let kind = kinds[(k as usize + ci) % kinds.len()];
        let mut d = demo.start("business_inspection", unit, officer, None, on)?;
        d.set("inspected_on", date(on))?
            .set("business_name", text(format!("Cơ sở {} số {}", kind, k + 1)))?
            .set("business_kind", choice(kind))?
            .set("address", text(*demo.rng.pick(VILLAGES)))?
            .set("security_certificate", FieldValue::Boolean(demo.rng.chance(80)))?
            .set("drugs_found", FieldValue::Boolean(false))?;
        if demo.rng.chance(35) {
            d.row(
                "violations",
                vec![
                    ("violation", text("Không thông báo lưu trú, hoạt động quá giờ")),
                    ("handling", choice("fine")),
                    ("fine_vnd", FieldValue::Integer(1_500_000)),
                ],
            )?;
        }
        d.event(EventKind::Submit, officer, None, on)?;
        demo.finish(d)?;
    }
    let audiences = ["residents", "youth", "students", "workers", "ethnic_minorities", "families"];
    for m in 0..12 {
        for _ in 0..demo.rng.range(1, 2) {
            let on = days(add_months(today, -m), -demo.rng.range(1, 27));
            if on > today {
                continue;
            }
            let mut d = demo.start("propaganda_session", unit, officer, None, on)?;
            d.set("session_date", date(on))?
                .set("place", text(format!("Nhà văn hóa {}", demo.rng.pick(VILLAGES))))?
                .set("audience_group", choice(demo.rng.word(&audiences)))?
                .set("participants", FieldValue::Integer(demo.rng.range(30, 260)))?;
            d.event(EventKind::Submit, officer, None, on)?;
            demo.finish(d)?;
        }
    }
    Ok(())
}

/// The last six monthly reports of a commune without demo records: mostly approved, the
/// recent ones in every state, a few late.
fn other_reports(demo: &mut Demo, i: usize, unit: &str) -> Result<(), DbError> {
    let monthly = demo.forms.get("commune_monthly_report").cloned().ok_or_else(|| invalid("no monthly report"))?;
    let spec = monthly.template().period.clone().ok_or_else(|| invalid("the monthly report has no period"))?;
    let (officer, lead) = (format!("canbo.{unit}"), format!("lanhdao.{unit}"));
    let mut start = spec.bounds(&spec.key_for(demo.today)).map_err(invalid)?.start;
    for offset in 0..6 {
        let key = spec.key_for(days(start, -1));
        let bounds = spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let state = match offset {
            0 => [
                None,
                Some("draft"),
                Some("submitted"),
                Some("signed_off"),
                Some("approved"),
                Some("approved"),
                Some("submitted"),
                Some("returned"),
            ][i % 8],
            1 if i.is_multiple_of(10) => Some("returned"),
            1 if i % 10 == 1 => None,
            3 if i % 17 == 3 => None,
            _ => Some("approved"),
        };
        let Some(state) = state else { continue };
        let mut d = demo.start("commune_monthly_report", unit, &officer, Some(key.clone()), bounds.end)?;
        fill_indicators(demo, &mut d, &key, unit)?;
        let cases = i64::from(demo.rng.chance(15));
        d.set("drug_cases", FieldValue::Integer(cases))?
            .set("offenders", FieldValue::Integer(cases))?
            .set("art256a_cases", FieldValue::Integer(0))?
            .set(
                "assessment",
                text(format!("Kỳ {key}: không phát sinh điểm, tụ điểm; tiếp tục rà soát người sử dụng.")),
            )?
            .set("next_tasks", text("Tuyên truyền tại khu dân cư; phối hợp rà soát người tạm trú."))?;
        review(&mut d, state, &officer, &lead, bounds.due)?;
        demo.finish(d)?;
    }
    Ok(())
}

/// Which state a monthly report is in: `None` when the commune has not started it (late).
fn monthly_state(ci: usize, offset: usize) -> Option<&'static str> {
    match offset {
        0 => [Some("submitted"), Some("signed_off"), Some("draft"), Some("returned"), None][ci % 5],
        1 => ["approved", "signed_off", "returned", "approved"][ci % 4].into(),
        2 if ci == 3 => Some("signed_off"),
        4 if ci == 5 => None,
        7 if ci == 6 => None,
        _ => Some("approved"),
    }
}

/// Moves a report through the review workflow to `state`.
fn review(d: &mut Draft, state: &str, officer: &str, lead: &str, due: Date) -> Result<(), DbError> {
    if state == "draft" {
        return Ok(());
    }
    d.event(EventKind::Submit, officer, None, days(due, -1))?;
    match state {
        "submitted" => {}
        "signed_off" => {
            d.event(EventKind::SignOff, lead, None, due)?;
        }
        "returned" => {
            d.event(EventKind::SignOff, lead, None, due)?.event(
                EventKind::Return,
                REVIEWER,
                Some("Đề nghị xã rà soát lại số người đang quản lý sau cai và bổ sung đánh giá nguyên nhân."),
                days(due, 2),
            )?;
        }
        _ => {
            d.event(EventKind::SignOff, lead, None, due)?.event(EventKind::Approve, REVIEWER, None, days(due, 3))?;
        }
    }
    Ok(())
}

/// Fills a report's indicators from the commune's demo records.
fn fill_indicators(demo: &Demo, d: &mut Draft, period: &str, unit: &str) -> Result<(), DbError> {
    let templates: BTreeMap<&str, &diaban_core::Template> =
        demo.forms.iter().map(|(id, f)| (id.as_str(), f.template())).collect();
    let sources: Sources<'_> = demo
        .sources
        .iter()
        .filter_map(|(id, records)| Some((id.as_str(), (*templates.get(id.as_str())?, records.as_slice()))))
        .collect();
    let report = d.form.clone();
    for v in diaban_core::indicators::compute(report.template(), period, unit, &sources).map_err(invalid)? {
        if let Some(value) = v.typed(report.template()) {
            d.set(&v.field, value)?;
        }
    }
    Ok(())
}

/// Twelve monthly reports, the annual report, the yearly classification, two quarterly reviews.
fn reports(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, lead, population, _): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
    let today = demo.today;
    let monthly = demo.forms.get("commune_monthly_report").cloned().ok_or_else(|| invalid("no monthly report"))?;
    let spec = monthly.template().period.clone().ok_or_else(|| invalid("the monthly report has no period"))?;
    // The period in progress, then the twelve before it.
    let mut key = spec.key_for(today);
    let current = spec.bounds(&key).map_err(invalid)?;
    if ci.is_multiple_of(3) {
        let mut d = demo.start("commune_monthly_report", unit, officer, Some(key.clone()), current.start)?;
        fill_indicators(demo, &mut d, &key, unit)?;
        demo.finish(d)?;
    }
    let mut start = current.start;
    for offset in 0..12 {
        key = spec.key_for(days(start, -1));
        let bounds = spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let Some(state) = monthly_state(ci, offset) else { continue };
        let mut d = demo.start("commune_monthly_report", unit, officer, Some(key.clone()), bounds.end)?;
        d.ts = at(bounds.end);
        fill_indicators(demo, &mut d, &key, unit)?;
        let cases = demo.rng.range(0, 3);
        let offenders = cases + demo.rng.range(0, 2);
        d.set("drug_cases", FieldValue::Integer(cases))?
            .set("offenders", FieldValue::Integer(offenders))?
            .set("art256a_cases", FieldValue::Integer(demo.rng.range(0, offenders)))?
            .set(
                "assessment",
                text(format!(
                    "Kỳ {key}: tình hình tội phạm và tệ nạn ma túy trên địa bàn cơ bản được kiểm soát; \
                     còn đối tượng từ nơi khác đến sử dụng trái phép chất ma túy tại các lán nương."
                )),
            )?
            .set(
                "results",
                text("Duy trì kiểm tra cư trú hằng tháng; phối hợp Đồn Biên phòng tuần tra tuyến biên giới."),
            )?
            .set(
                "next_tasks",
                text("Rà soát danh sách người sử dụng; tuyên truyền tại các bản vùng cao; kiểm tra cơ sở lưu trú."),
            )?;
        review(&mut d, state, officer, lead, bounds.due)?;
        demo.finish(d)?;
    }
    // The annual report for the last reporting year that has ended.
    let annual = demo.forms.get("commune_annual_report").cloned().ok_or_else(|| invalid("no annual report"))?;
    let year_spec = annual.template().period.clone().ok_or_else(|| invalid("the annual report has no period"))?;
    let this_year = year_spec.bounds(&year_spec.key_for(today)).map_err(invalid)?;
    let year = year_spec.key_for(days(this_year.start, -1));
    let bounds = year_spec.bounds(&year).map_err(invalid)?;
    let mut d = demo.start("commune_annual_report", unit, officer, Some(year.clone()), bounds.end)?;
    fill_indicators(demo, &mut d, &year, unit)?;
    d.set("drug_cases", FieldValue::Integer(demo.rng.range(4, 15)))?
        .set("offenders", FieldValue::Integer(demo.rng.range(15, 25)))?
        .set("art256a_cases", FieldValue::Integer(demo.rng.range(0, 4)))?
        .set("assessment", text(format!("Năm {year}: kiềm chế được sự gia tăng người sử dụng trái phép chất ma túy.")))?
        .set("next_tasks", text("Xây dựng xã không ma túy theo lộ trình đến năm 2030."))?;
    review(&mut d, ["approved", "signed_off", "submitted", "draft"][ci % 4], officer, lead, bounds.due)?;
    demo.finish(d)?;
    // The yearly classification of this calendar year, prepared before the year closes.
    let this_year = today.year().to_string();
    let mut d = demo.start("commune_assessment", unit, officer, Some(this_year.clone()), days(today, -3))?;
    fill_indicators(demo, &mut d, &this_year, unit)?;
    d.set("population", FieldValue::Integer(*population))?
        .set("offenders", FieldValue::Integer(demo.rng.range(2, 14)))?
        .set("on_drug_route", FieldValue::Boolean(ci.is_multiple_of(2)))?;
    if ci.is_multiple_of(2) {
        d.set("route_note", text("Quốc lộ 4G, tuyến biên giới Việt – Lào"))?;
    }
    review(&mut d, ["draft", "submitted", "signed_off"][ci % 3], officer, lead, days(today, -1))?;
    demo.finish(d)?;
    // Two quarterly reviews of the self-managed groups.
    let quarterly = demo.forms.get("group_review").cloned().ok_or_else(|| invalid("no group review"))?;
    let q_spec = quarterly.template().period.clone().ok_or_else(|| invalid("the group review has no period"))?;
    let mut start = q_spec.bounds(&q_spec.key_for(today)).map_err(invalid)?.start;
    for (offset, state) in ["submitted", "approved"].iter().enumerate() {
        let key = q_spec.key_for(days(start, -1));
        let bounds = q_spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let state = if offset == 0 && ci % 2 == 1 { "signed_off" } else { state };
        let mut d = demo.start("group_review", unit, officer, Some(key.clone()), bounds.end)?;
        for (name, kind) in [("Tổ tự quản bản Nà Sản", "self_managed"), ("CLB Thanh niên không ma túy", "club")]
        {
            d.row(
                "groups",
                vec![
                    ("group_name", text(name)),
                    ("model_kind", choice(kind)),
                    ("members", FieldValue::Integer(demo.rng.range(8, 30))),
                    ("meetings", FieldValue::Integer(demo.rng.range(1, 6))),
                    ("rating", choice(demo.rng.word(&["good", "fair", "weak"]))),
                ],
            )?;
        }
        d.set("assessment", text("Các tổ duy trì sinh hoạt; một số tổ cần củng cố nhân sự."))?;
        review(&mut d, state, officer, lead, bounds.due)?;
        demo.finish(d)?;
    }
    Ok(())
}
