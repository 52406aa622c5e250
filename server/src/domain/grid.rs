//! The completeness grid of a periodic report: which commune has reported for which period,
//! and how far each report has come. Pure: the page (`web`) draws it, the demo's tests check
//! that every state shows on any day.

use std::collections::HashMap;

use diaban_core::period::{Bounds, PeriodSpec};
use time::Date;

/// How many periods the grid shows: the current one and the five before it.
pub const PERIODS: usize = 6;

/// One commune's report for one period, as the grid shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GridCell {
    NotStarted,
    Draft,
    /// Not started, and the due date has passed.
    Late,
    /// Started but not submitted, and the due date has passed.
    LateDraft,
    Submitted,
    SignedOff,
    Returned,
    Approved,
}

impl GridCell {
    /// The cell of a report in `state` (`None`: no record), before or after its due date.
    pub fn of(state: Option<&str>, due_passed: bool) -> GridCell {
        match state {
            Some("approved") => GridCell::Approved,
            Some("submitted") => GridCell::Submitted,
            Some("signed_off") => GridCell::SignedOff,
            Some("returned") => GridCell::Returned,
            Some(_) if due_passed => GridCell::LateDraft,
            Some(_) => GridCell::Draft,
            None if due_passed => GridCell::Late,
            None => GridCell::NotStarted,
        }
    }

    /// The cell's CSS class (late drafts and late reports look alike).
    pub fn class(self) -> &'static str {
        match self {
            GridCell::NotStarted => "not_started",
            GridCell::Draft => "draft",
            GridCell::Late | GridCell::LateDraft => "late",
            GridCell::Submitted => "submitted",
            GridCell::SignedOff => "signed_off",
            GridCell::Returned => "returned",
            GridCell::Approved => "approved",
        }
    }
}

/// The period containing `today` and the `count - 1` before it, newest first, with their
/// bounds.
pub fn periods(spec: &PeriodSpec, today: Date, count: usize) -> Vec<(String, Bounds)> {
    let mut periods = Vec::new();
    let mut day = today;
    for _ in 0..count {
        let key = spec.key_for(day);
        let Ok(bounds) = spec.bounds(&key) else { break };
        periods.push((key, bounds));
        match bounds.start.previous_day() {
            Some(d) => day = d,
            None => break,
        }
    }
    periods
}

/// The most advanced state per (unit, period) of `(unit, period, state)` rows, when a commune
/// has several records for one period.
pub fn most_advanced(states: Vec<(String, String, String)>) -> HashMap<(String, String), String> {
    let rank = |s: &str| {
        ["draft", "reopened", "returned", "submitted", "signed_off", "approved"]
            .iter()
            .position(|x| *x == s)
            .unwrap_or(0)
    };
    let mut best: HashMap<(String, String), String> = HashMap::new();
    for (unit, period, state) in states {
        let entry = best.entry((unit, period)).or_insert_with(|| state.clone());
        if rank(&state) > rank(entry) {
            *entry = state;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use diaban_core::period::PeriodLength;
    use time::macros::date;

    #[test]
    fn a_report_is_late_only_once_its_due_date_has_passed() {
        assert_eq!(GridCell::of(None, false), GridCell::NotStarted);
        assert_eq!(GridCell::of(None, true), GridCell::Late);
        assert_eq!(GridCell::of(Some("draft"), true).class(), "late");
        assert_eq!(GridCell::of(Some("reopened"), false), GridCell::Draft);
        assert_eq!(GridCell::of(Some("submitted"), true), GridCell::Submitted);
    }

    #[test]
    fn the_grid_shows_the_current_period_and_the_five_before_it() {
        let spec =
            PeriodSpec { length: PeriodLength::Month, start_day: 15, due_days_after_end: 2, year_end_month: None };
        let keys: Vec<String> = periods(&spec, date!(2026 - 12 - 31), PERIODS).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["2027-01", "2026-12", "2026-11", "2026-10", "2026-09", "2026-08"]);
        let keys: Vec<String> = periods(&spec, date!(2028 - 02 - 29), 2).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["2028-03", "2028-02"]);
    }

    #[test]
    fn the_most_advanced_state_of_a_communes_reports_counts() {
        let row = |s: &str| ("03694".to_owned(), "2026-11".to_owned(), s.to_owned());
        let best = most_advanced(vec![row("draft"), row("approved"), row("returned")]);
        assert_eq!(best[&("03694".to_owned(), "2026-11".to_owned())], "approved");
    }
}
