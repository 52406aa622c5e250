//! Periods, due dates and reminders on every day of the calendar: periods tile the days of
//! 2025–2028 without gaps or overlaps whatever their length and cut-off, and the registry's
//! reminders fall due as the rules say on each date of `tests/pinned-dates.txt` (month ends,
//! cut-offs, the Law 120 switch, 31 December, 29 February, Tết).

use std::path::PathBuf;

use diaban_core::Form;
use diaban_core::clock::{iso, parse_date};
use diaban_core::form::Env;
use diaban_core::indicators::SourceRecord;
use diaban_core::period::{PeriodLength, PeriodSpec};
use diaban_core::reminders::reminders;
use serde_json::{Map, Value as Json, json};
use time::{Date, Duration, Month};

fn pinned_dates() -> Vec<Date> {
    include_str!("../../tests/pinned-dates.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| parse_date(l).unwrap_or_else(|| panic!("{l:?} in tests/pinned-dates.txt")))
        .collect()
}

/// `n` months after `d`, the day clamped to the month's length (what `add_months` promises).
fn months_later(d: Date, n: i32) -> Date {
    let index = d.year() * 12 + d.month() as i32 - 1 + n;
    let month = Month::try_from((index.rem_euclid(12) + 1) as u8).unwrap();
    let year = index.div_euclid(12);
    Date::from_calendar_date(year, month, d.day().min(time::util::days_in_month(month, year))).unwrap()
}

#[test]
fn periods_tile_every_day_of_four_years() {
    let spec =
        |length, start_day, year_end_month| PeriodSpec { length, start_day, due_days_after_end: 2, year_end_month };
    let specs = [
        spec(PeriodLength::Month, 1, None),
        spec(PeriodLength::Month, 15, None),
        spec(PeriodLength::Quarter, 15, None),
        spec(PeriodLength::HalfYear, 1, None),
        spec(PeriodLength::Year, 15, None),
        spec(PeriodLength::Year, 15, Some(10)),
        spec(PeriodLength::Year, 1, Some(6)),
    ];
    for s in &specs {
        let mut day = Date::from_calendar_date(2025, Month::January, 1).unwrap();
        let mut previous: Option<(String, Date)> = None;
        while day.year() < 2029 {
            let key = s.key_for(day);
            let b = s.bounds(&key).unwrap_or_else(|e| panic!("{s:?} {key}: {e}"));
            assert!(b.start <= day && day <= b.end, "{s:?}: {} is not in {key} ({}–{})", iso(day), b.start, b.end);
            assert_eq!(b.due, b.end + Duration::days(2), "{s:?} {key}");
            if let Some((prev_key, prev_end)) = &previous
                && *prev_key != key
            {
                assert_eq!(b.start, *prev_end + Duration::days(1), "{s:?}: {prev_key} and {key} do not meet");
            }
            previous = Some((key, b.end));
            day = day.next_day().unwrap();
        }
    }
}

fn person(form: &Form, today: Date, periods: Json, checks: Json) -> SourceRecord {
    let mut values: Map<String, Json> = json!({"full_name": "Lò Văn Một", "sex": "male", "birth_date": "1990-01-01",
        "residence_kind": "permanent", "address": "Bản Nà Sản", "periods": periods, "checks": checks})
    .as_object()
    .cloned()
    .unwrap();
    let env = Env { today: iso(today), period: None, lang: "vi".into() };
    values.extend(form.evaluate(&values, &env, &Default::default()).calculated);
    SourceRecord { id: "p".into(), unit_code: "03694".into(), values }
}

#[test]
fn reminders_fall_due_as_the_rules_say_on_every_pinned_date() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/pack/person_record.json"))
            .expect("pack file");
    let form = Form::from_json(&text).expect("publishes");
    for today in pinned_dates() {
        for lead in [0, 1, 12, 30, 31] {
            // A 12-month period whose last day is `lead` days away (start + 12 months - 1 day).
            let start = months_later(today + Duration::days(lead + 1), -12);
            let due = months_later(start, 12) - Duration::days(1);
            let checked = months_later(today, -1) + Duration::days(3);
            let record = person(
                &form,
                today,
                json!([{"_id": "a", "status": "user_managed", "start_date": iso(start), "duration_months": 12}]),
                json!([{"_id": "c", "check_date": iso(checked.max(start)), "found_at_home": true}]),
            );
            let listed = reminders(form.template(), &[record], &iso(today), "vi");
            let ending: Vec<_> = listed.iter().filter(|r| r.rule == "period_ending").collect();
            let days_left = (due - today).whole_days();
            assert_eq!(ending.len(), usize::from(days_left <= 30), "{today} lead {lead}: {listed:?}");
            if let Some(r) = ending.first() {
                assert_eq!((r.due.as_str(), r.days_left), (iso(due).as_str(), days_left), "{today} lead {lead}");
            }
            // The last check was a month less three days ago: the next is due in three days.
            if checked >= start {
                let check = listed.iter().find(|r| r.rule == "residence_check").expect("a check due");
                assert_eq!(check.due, iso(months_later(checked, 1)), "{today}");
            }
        }
    }
}
