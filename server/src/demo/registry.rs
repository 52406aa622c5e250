//! The registries and events of the demo communes: people under management, hotspots, crop
//! eradications, inspections and propaganda sessions.

use diaban_core::FieldValue;
use diaban_core::record::EventKind;

use super::{
    Demo, ETHNIC, FAMILY, FEMALE, MALE, PEOPLE_PER_COMMUNE, PeriodRow, REVIEWER, VILLAGES, add_months, choice, date,
    days, text,
};
use crate::store::DbError;

/// The first demo's four sessions, kept as they were.
pub(super) fn original_sessions(demo: &mut Demo) -> Result<(), DbError> {
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

/// The people every commune's registry has, whatever the day: one whose management period
/// ends within the month, one whose post-rehab management does, one whose residence check is
/// overdue (the three reminder rules of the registry). The rest are drawn at random.
const ENDING_SOON: usize = 10;
const POST_REHAB_ENDING_SOON: usize = 11;
const CHECK_OVERDUE: usize = 12;

/// About 25 people per commune, spread over the statuses of the registry.
pub(super) fn people(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, _, _, _): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
    let today = demo.today;
    for k in 0..PEOPLE_PER_COMMUNE {
        let male = demo.rng.chance(82);
        let name =
            format!("{} {}", demo.rng.pick(FAMILY), if male { demo.rng.pick(MALE) } else { demo.rng.pick(FEMALE) });
        let age = demo.rng.range(19, 55);
        let born = days(add_months(today, -12 * age), -demo.rng.range(0, 360));
        let scenario = match k {
            0 => ENDING_SOON,
            1 => POST_REHAB_ENDING_SOON,
            2 => CHECK_OVERDUE,
            _ => (k + ci) % 10,
        };
        // Residence checks are made monthly up to this day.
        let mut checks_until = today;
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
            ENDING_SOON => {
                // The period's last day (start + 12 months - 1 day) falls 3 to 25 days from today.
                let start = add_months(days(today, demo.rng.range(4, 26)), -12);
                rows.push(("user_managed", start, Some(12), None, None, false));
            }
            POST_REHAB_ENDING_SOON => {
                let start = add_months(days(today, demo.rng.range(4, 26)), -12);
                rows.push((
                    "rehab_home",
                    add_months(start, -6),
                    Some(6),
                    Some(days(start, -1)),
                    Some("completed"),
                    false,
                ));
                rows.push(("post_rehab", start, Some(12), None, None, false));
            }
            CHECK_OVERDUE => {
                rows.push(("user_managed", days(today, -demo.rng.range(150, 300)), Some(12), None, None, false));
                checks_until = add_months(today, -2);
            }
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
            while on <= checks_until {
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
pub(super) fn moved_person(demo: &mut Demo) -> Result<(), DbError> {
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
pub(super) fn places(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, _, _, rural): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
    let today = demo.today;
    // Eliminated, with monthly re-checks since; in every other commune the re-checks stopped
    // 40 days ago, so that a re-check is overdue whatever the day.
    let rechecks_until = if ci.is_multiple_of(2) { days(today, -40) } else { today };
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
        .set(
            "elimination_basis",
            text(format!("Khởi tố vụ án số {}/{}, triệt phá điểm", demo.rng.range(3, 90), eliminated.year())),
        )?;
    let mut on = add_months(eliminated, 1);
    while on <= rechecks_until {
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
pub(super) fn events(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, _, _, _): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
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
        // Older inspections were approved by the province; one was reopened for a correction
        // (the review states every demo shows).
        if k >= 1 {
            d.event(EventKind::Approve, REVIEWER, None, days(on, 5))?;
        }
        if k == 2 && ci.is_multiple_of(4) {
            d.event(EventKind::Reopen, REVIEWER, Some("Bổ sung số biên bản xử phạt vi phạm hành chính."), days(on, 9))?;
        }
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
