//! The demo shows everything it promises on any day: every reminder rule, every state of the
//! completeness grid and every review state, on each date of `tests/pinned-dates.txt` and
//! today. Built in memory with the server's own demo code, checked with the same functions the
//! pages use (`diaban_core::reminders`, `diaban_server::domain::grid`).

use std::collections::{BTreeMap, BTreeSet};

use diaban_core::indicators::SourceRecord;
use diaban_core::{Clock, Template};
use diaban_server::demo;
use diaban_server::domain::grid::{self, GridCell};
use diaban_server::domain::sync::Projection;
use diaban_server::store::Db;
use time::Date;

/// The pinned dates the date-sensitive tests run on.
fn pinned_dates() -> Vec<Date> {
    include_str!("../../tests/pinned-dates.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| diaban_core::clock::parse_date(l).unwrap_or_else(|| panic!("{l:?} in tests/pinned-dates.txt")))
        .collect()
}

#[test]
fn the_spread_of_pinned_dates_covers_the_hard_days() {
    let dates: BTreeSet<String> = pinned_dates().into_iter().map(diaban_core::clock::iso).collect();
    for day in ["2026-06-30", "2026-07-01", "2026-12-31", "2028-02-29", "2026-03-14", "2026-03-15", "2027-02-06"] {
        assert!(dates.contains(day), "{day} is not among the pinned dates");
    }
}

/// Reminder rules listed on `today` over the demo's records.
fn reminder_rules(
    templates: &[Template],
    records: &[(diaban_core::RecordDoc, Projection)],
    today: Date,
) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for template in templates.iter().filter(|t| !t.reminders.is_empty()) {
        let sources: Vec<SourceRecord> = records
            .iter()
            .map(|(_, p)| p)
            .filter(|p| p.meta.template_id == template.id)
            .map(|p| SourceRecord {
                id: p.meta.record_id.clone(),
                unit_code: p.meta.unit_code.clone(),
                values: serde_json::from_str(&p.values_json).expect("projected values"),
            })
            .collect();
        let today = diaban_core::clock::iso(today);
        rules.extend(diaban_core::reminders::reminders(template, &sources, &today, "vi").into_iter().map(|r| r.rule));
    }
    rules
}

/// The cells of the monthly report's grid on `today`.
fn grid_cells(
    monthly: &Template,
    records: &[(diaban_core::RecordDoc, Projection)],
    communes: &[String],
    today: Date,
) -> BTreeSet<&'static str> {
    let spec = monthly.period.clone().expect("the monthly report is periodic");
    let states = records
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.meta.template_id == monthly.id)
        .map(|p| (p.meta.unit_code.clone(), p.meta.period.clone().unwrap_or_default(), p.state.as_str().to_owned()))
        .collect();
    let best = grid::most_advanced(states);
    let mut cells = BTreeSet::new();
    for (key, bounds) in grid::periods(&spec, today, grid::PERIODS) {
        for unit in communes {
            let cell = GridCell::of(best.get(&(unit.clone(), key.clone())).map(String::as_str), today > bounds.due);
            cells.insert(match cell {
                GridCell::LateDraft => "late_draft",
                other => other.class(),
            });
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_every_reminder_grid_state_and_review_state_on_any_day() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(&dir.path().join("demo.sqlite").to_string_lossy()).await.expect("open");
    demo::prepare(&db).await.expect("prepare");
    let templates = db.published_templates().await.expect("templates");
    let monthly = templates.iter().find(|t| t.id == "commune_monthly_report").expect("monthly report").clone();
    let scope = db.unit_scope("14").await.expect("scope");
    let communes: Vec<String> = db.communes_in(&scope).await.expect("communes").into_iter().map(|u| u.code).collect();
    let every_rule: BTreeSet<String> =
        templates.iter().flat_map(|t| t.reminders.iter().map(|r| r.id.clone())).collect();
    assert_eq!(every_rule.len(), 4, "{every_rule:?}");

    let mut days = pinned_dates();
    days.push(Clock::from_env().expect("DIABAN_CLOCK").today());
    let inputs = demo::Inputs::read(&db).await.expect("inputs");
    // What each day lacks, the days split between two threads (building is CPU work).
    let lacking = |today: Date| -> Option<(String, Vec<String>)> {
        let records = demo::build_from(&inputs, today).expect("build");
        let rules = reminder_rules(&templates, &records, today);
        let cells = grid_cells(&monthly, &records, &communes, today);
        let states: BTreeSet<&str> = records.iter().map(|(_, p)| p.state.as_str()).collect();
        let mut lacks: Vec<String> = every_rule.iter().filter(|r| !rules.contains(*r)).cloned().collect();
        for cell in ["not_started", "draft", "late", "submitted", "signed_off", "returned", "approved"] {
            if !cells.contains(cell) {
                lacks.push(format!("grid {cell}"));
            }
        }
        for state in ["draft", "submitted", "signed_off", "returned", "approved", "reopened"] {
            if !states.contains(state) {
                lacks.push(format!("state {state}"));
            }
        }
        (!lacks.is_empty()).then(|| (diaban_core::clock::iso(today), lacks))
    };
    let lacking = &lacking;
    let missing: BTreeMap<String, Vec<String>> = std::thread::scope(|s| {
        let halves: Vec<_> = [0, 1]
            .map(|half| {
                let days: Vec<Date> = days.iter().skip(half).step_by(2).copied().collect();
                s.spawn(move || days.into_iter().filter_map(lacking).collect::<Vec<_>>())
            })
            .into_iter()
            .collect();
        halves.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    });
    assert!(missing.is_empty(), "the demo lacks on these days: {missing:#?}");
}
