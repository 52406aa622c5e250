//! Demo data for `diaban demo`: a province, its communes, a user per role, a few records.
//!
//! Unit codes and names follow QĐ 19/2025/QĐ-TTg as quoted by secondary sources [P];
//! check them against the official list before relying on them.

use automerge::ActorId;
use diaban_core::FieldValue;
use diaban_core::db::now;
use diaban_core::record::{EventKind, FieldPath, RecordMeta};
use diaban_core::template::Role;

use crate::db::{Db, DbError, RecordWrite, Unit};

/// (username, password, display name, role, unit code), printed by `diaban demo`.
pub const DEMO_USERS: &[(&str, &str, &str, Role, &str)] = &[
    ("admin", "quantri-2026", "Quản trị hệ thống", Role::Admin, "01"),
    ("kiemduyet", "kiemduyet-2026", "Nguyễn Thị Thẩm Định", Role::Reviewer, "01"),
    ("canbo.badinh", "canbo-2026", "Trần Văn Cơ Sở", Role::FieldOfficer, "00004"),
    ("lanhdao.badinh", "lanhdao-2026", "Lê Văn Lãnh Đạo", Role::CommuneLead, "00004"),
];

const UNITS: &[(&str, &str, &str, Option<&str>)] = &[
    ("01", "Thành phố Hà Nội", "province", None),
    ("00004", "Phường Ba Đình", "commune", Some("01")),
    ("00008", "Phường Ngọc Hà", "commune", Some("01")),
    ("00025", "Phường Giảng Võ", "commune", Some("01")),
];

/// Seeds the demo once; a database that already has users is left alone.
pub async fn seed(db: &Db) -> Result<bool, DbError> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?;
    if users > 0 {
        return Ok(false);
    }
    for (code, name, level, parent) in UNITS {
        db.create_unit(&Unit {
            code: (*code).into(),
            name: (*name).into(),
            level: (*level).into(),
            parent_code: parent.map(Into::into),
        })
        .await?;
    }
    for (username, password, name, role, unit) in DEMO_USERS {
        db.create_user(username, name, password, *role, unit).await?;
    }
    crate::pack::publish(db).await?;
    let sessions = [
        ("00004", "2026-10-05", "Nhà văn hóa tổ dân phố số 3", "residents", 85, true),
        ("00004", "2026-10-19", "Trường THCS Phan Chu Trinh", "students", 420, true),
        ("00004", "2026-11-08", "Khu nhà trọ công nhân phố Đội Cấn", "workers", 37, false),
        ("00008", "2026-11-12", "Hội trường UBND phường Ngọc Hà", "youth", 120, true),
    ];
    for (unit, date, place, audience, participants, submitted) in sessions {
        let actor = ActorId::random();
        let meta = RecordMeta {
            record_id: uuid::Uuid::new_v4().to_string(),
            template_id: "propaganda_session".into(),
            template_version: 1,
            unit_code: unit.into(),
            created_by: "canbo.badinh".into(),
            created_at: now(),
            device_id: "demo".into(),
            period: None,
        };
        let form = db
            .form(&meta.template_id, meta.template_version)
            .await?
            .ok_or_else(|| DbError::Invalid("the demo template is not published".into()))?;
        let mut doc = form.new_record(&meta, actor, now()).map_err(|e| DbError::Invalid(e.to_string()))?;
        let values = [
            ("session_date", FieldValue::Date(date.into())),
            ("place", FieldValue::Text(place.into())),
            ("audience_group", FieldValue::Choice(audience.into())),
            ("participants", FieldValue::Integer(participants)),
        ];
        for (name, value) in &values {
            doc.set_field(&FieldPath::top(name), value, now()).map_err(|e| DbError::Invalid(e.to_string()))?;
        }
        if submitted {
            doc.append_event(EventKind::Submit, "canbo.badinh", None, now())
                .map_err(|e| DbError::Invalid(e.to_string()))?;
        }
        let projection = crate::sync::project(&mut doc, &form);
        let bytes = doc.save();
        db.write(async |tx| {
            Db::put_record(
                tx,
                &RecordWrite {
                    id: &meta.record_id,
                    template_id: &meta.template_id,
                    template_version: meta.template_version,
                    unit_code: &meta.unit_code,
                    state: projection.state.as_str(),
                    created_by: &meta.created_by,
                    created_at: meta.created_at,
                    doc: crate::db::DocBytes::Snapshot(&bytes),
                    heads: &projection.heads,
                    values_json: &projection.values_json,
                    device_id: None,
                },
            )
            .await
        })
        .await?;
    }
    Ok(true)
}
