//! A commune's registry and logs, made on a phone (the real `Device` API), give the monthly
//! report's indicators and the reminders, on the phone and on the server's pages alike. Talks
//! to a real `diaban` process over loopback.

mod common;

use common::{Server, get, web_login};
use diaban_core::{Clock, Device, FieldValue};

/// The day the scenario below happens on, pinned on the server and the phone alike.
const TODAY: &str = "2026-11-20";

fn start() -> Server {
    Server::with_users_on(&[("canbo", "03694", "field_officer"), ("tinh", "14", "reviewer")], Some(TODAY))
}

fn date(s: &str) -> FieldValue {
    FieldValue::Date(s.into())
}

fn choice(s: &str) -> FieldValue {
    FieldValue::Choice(s.into())
}

/// A person with one management period (and a residence check when given).
#[allow(clippy::too_many_arguments)]
async fn person(
    phone: &Device,
    name: &str,
    sex: &str,
    born: &str,
    status: &str,
    start: &str,
    months: i64,
    end: Option<&str>,
    check: Option<&str>,
) -> String {
    let id = phone.create_record("person_record", None).await.expect("create");
    for (field, value) in [
        ("full_name", FieldValue::Text(name.into())),
        ("sex", choice(sex)),
        ("birth_date", date(born)),
        ("residence_kind", choice("permanent")),
        ("address", FieldValue::Text("Bản Nà Sản".into())),
    ] {
        phone.set_field(&id, field, value).await.expect("answer");
    }
    let row = phone.add_row(&id, "periods").await.expect("period row");
    let mut answers =
        vec![("status", choice(status)), ("start_date", date(start)), ("duration_months", FieldValue::Integer(months))];
    if let Some(end) = end {
        answers.push(("end_date", date(end)));
        answers.push(("end_reason", choice("expired_no_use")));
    }
    for (field, value) in answers {
        phone.set_field(&id, &format!("periods/{row}/{field}"), value).await.expect("period answer");
    }
    if let Some(check) = check {
        let row = phone.add_row(&id, "checks").await.expect("check row");
        phone.set_field(&id, &format!("checks/{row}/check_date"), date(check)).await.expect("check");
        phone.set_field(&id, &format!("checks/{row}/found_at_home"), FieldValue::Boolean(true)).await.expect("home");
    }
    id
}

async fn session(phone: &Device, on: &str, participants: i64) {
    let id = phone.create_record("propaganda_session", None).await.expect("create");
    phone.set_field(&id, "session_date", date(on)).await.expect("date");
    phone.set_field(&id, "place", FieldValue::Text("Nhà văn hóa".into())).await.expect("place");
    phone.set_field(&id, "audience_group", choice("residents")).await.expect("audience");
    phone.set_field(&id, "participants", FieldValue::Integer(participants)).await.expect("participants");
}

/// The cells of the indicator row of `field` on a record page: label, reported, recomputed.
fn indicator_row(html: &str, field: &str) -> Vec<String> {
    let html = &html[html.find("id=\"indicators\"").expect("indicator table")..];
    let start = html.find(&format!("data-field=\"{field}\"")).unwrap_or_else(|| panic!("no indicator row {field}"));
    let row = &html[start..html[start..].find("</tr>").map(|e| start + e).expect("row end")];
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let inner = &cell[cell.find('>').expect("cell") + 1..];
            let text = &inner[..inner.find("</td>").expect("cell end")];
            let class = if cell.starts_with(" class=\"late\"") { "!" } else { "" };
            format!("{class}{text}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phones_records_fill_the_monthly_report_and_the_server_recomputes_it() {
    let server = start();
    let mut phone = Device::open(&server.dir.path().join("phone.sqlite"), &[7u8; 32], &server.url, "phone")
        .await
        .expect("open device");
    phone.set_clock(Clock::parse(TODAY).expect("clock"));
    phone.login("canbo", "mat-khau-dai").await.expect("login");
    phone.sync().await.expect("templates");

    // Period 2026-11 = 15/10–14/11.
    person(&phone, "Lò Văn Một", "male", "1990-05-01", "user_managed", "2026-10-15", 12, None, Some("2026-10-20"))
        .await;
    person(&phone, "Lường Thị Hai", "female", "2009-01-01", "post_rehab", "2025-12-01", 12, None, None).await;
    person(&phone, "Cầm Văn Ba", "male", "1985-01-01", "user_managed", "2026-01-01", 12, Some("2026-11-14"), None)
        .await;
    session(&phone, "2026-11-14", 60).await;
    session(&phone, "2026-11-15", 40).await;

    let report = phone.create_record("commune_monthly_report", Some("2026-11")).await.expect("report");
    let computed = phone.indicators(&report).await.expect("compute");
    let rows = phone.fill_indicators(&report).await.expect("fill");
    assert_eq!(computed, rows, "computing writes nothing; filling writes what it computed");
    let got = |field: &str| rows.iter().find(|r| r.field == field).map(|r| r.value);
    assert_eq!(got("people_total"), Some(3.0));
    assert_eq!(got("status_user_managed"), Some(2.0), "Ba's period ends on the last day: still in force");
    assert_eq!(got("status_post_rehab"), Some(1.0));
    assert_eq!((got("people_male"), got("people_female")), (Some(2.0), Some(1.0)));
    assert_eq!((got("age_under_18"), got("age_30_plus")), (Some(1.0), Some(2.0)));
    assert_eq!((got("new_users"), got("users_ended")), (Some(1.0), Some(1.0)));
    assert_eq!((got("sessions"), got("participants")), (Some(1.0), Some(60.0)), "15/11 is next month's");
    let label = rows.iter().find(|r| r.field == "people_total").map(|r| r.label.clone()).unwrap_or_default();
    assert!(label.starts_with("Tổng số người"), "{label}");
    let view = phone.record(&report).await.expect("view");
    let shown = view.items.iter().find(|i| i.name == "sessions").and_then(|i| i.value.clone());
    assert_eq!(shown, Some(serde_json::json!(1)), "the figures are written into the report");

    // Reminders on the phone, on 20/11/2026.
    let reminders = phone.reminders().await.expect("reminders");
    let listed: Vec<(String, String, String)> =
        reminders.iter().map(|r| (r.subject.clone().unwrap_or_default(), r.rule.clone(), r.due.clone())).collect();
    assert_eq!(
        listed,
        [
            ("Lường Thị Hai", "residence_check", "2026-01-01"),
            ("Lò Văn Một", "residence_check", "2026-11-20"),
            ("Lường Thị Hai", "post_rehab_ending", "2026-11-30"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );

    for (field, value) in [
        ("drug_cases", FieldValue::Integer(1)),
        ("offenders", FieldValue::Integer(2)),
        ("art256a_cases", FieldValue::Integer(1)),
        ("assessment", FieldValue::Text("Tình hình ổn định".into())),
        ("next_tasks", FieldValue::Text("Tiếp tục kiểm tra cư trú".into())),
    ] {
        phone.set_field(&report, field, value).await.expect("answer");
    }
    phone.submit(&report).await.expect("submit");
    let sync = phone.sync().await.expect("sync");
    assert!(sync.accepted.contains(&report) && sync.rejected.is_empty(), "{:?}", sync.rejected);

    // The server recomputes the same figures from the synced records.
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = web_login(&http, &server.url, "tinh").await;
    let page = get(&http, &format!("{}/records/{report}", server.url), &cookie).await;
    assert_eq!(indicator_row(&page, "people_total")[1..], ["3", "3"]);
    assert_eq!(indicator_row(&page, "sessions")[1..], ["1", "1"]);

    // A session logged late for the period: the server shows the difference.
    session(&phone, "2026-11-01", 25).await;
    phone.sync().await.expect("sync");
    let page = get(&http, &format!("{}/records/{report}", server.url), &cookie).await;
    assert_eq!(indicator_row(&page, "sessions")[1..], ["1", "!2"]);
    assert_eq!(indicator_row(&page, "participants")[1..], ["60", "!85"]);

    // The province's reminders page lists the commune's, on the server's (pinned) today.
    let page = get(&http, &format!("{}/reminders", server.url), &cookie).await;
    assert!(page.contains("data-rule=\"residence_check\"") && page.contains("Lường Thị Hai"), "{page}");
    assert!(page.contains("data-rule=\"post_rehab_ending\"") && page.contains("Lò Văn Một"), "{page}");
    phone.close().await;
}
