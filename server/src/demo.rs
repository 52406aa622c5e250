//! Demo data for `diaban demo`: Sơn La, a mountain border province, with its 75 communes from
//! the national list (codes per QĐ 19/2025/QĐ-TTg), a user per role, a few records.

use automerge::ActorId;
use diaban_core::FieldValue;
use diaban_core::db::now;
use diaban_core::record::{EventKind, FieldPath, RecordMeta};
use diaban_core::template::Role;

use crate::db::{Db, DbError, RecordWrite};

/// (username, password, display name, role, unit code), printed by `diaban demo`.
pub const DEMO_USERS: &[(&str, &str, &str, Role, &str)] = &[
    ("admin", "quantri-2026", "Quản trị hệ thống", Role::Admin, "14"),
    ("kiemduyet", "kiemduyet-2026", "Hoàng Thị Thẩm Định", Role::Reviewer, "14"),
    ("canbo.muonggion", "canbo-2026", "Lò Văn Sáng", Role::FieldOfficer, "03694"),
    ("lanhdao.muonggion", "lanhdao-2026", "Cầm Văn Lãnh", Role::CommuneLead, "03694"),
    ("canbo.sopcop", "canbo-2026", "Lường Thị Mai", Role::FieldOfficer, "04231"),
];

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
    let sessions = [
        ("03694", "canbo.muonggion", "2026-10-05", "Nhà văn hóa bản Nà Sản", "residents", 85, true),
        ("03694", "canbo.muonggion", "2026-10-19", "Trường PTDTBT THCS Mường Giôn", "students", 420, true),
        ("03694", "canbo.muonggion", "2026-11-08", "Chợ phiên trung tâm xã", "ethnic_minorities", 137, false),
        ("04231", "canbo.sopcop", "2026-11-12", "Hội trường UBND xã Sốp Cộp", "youth", 120, true),
    ];
    for (unit, officer, date, place, audience, participants, submitted) in sessions {
        let actor = ActorId::random();
        let meta = RecordMeta {
            record_id: uuid::Uuid::new_v4().to_string(),
            template_id: "propaganda_session".into(),
            template_version: 1,
            unit_code: unit.into(),
            created_by: officer.into(),
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
            doc.append_event(EventKind::Submit, officer, None, now()).map_err(|e| DbError::Invalid(e.to_string()))?;
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
                    period: None,
                },
            )
            .await
        })
        .await?;
    }
    Ok(true)
}
