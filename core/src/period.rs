//! Reporting periods of periodic templates: length, cut-off day, due date.
//!
//! A period is named by the calendar unit it ends in: `2026-11` (month), `2026-Q4`,
//! `2026-H2`, `2026`. With `start_day = 1` periods are calendar periods; with
//! `start_day = 15` (the administrative rule of NĐ 09/2019 as applied in provinces) the
//! month `2026-11` runs from 15 October to 14 November, and the year `2026` from
//! 15 December 2025 to 14 December 2026.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodSpec {
    pub length: PeriodLength,
    /// Day of the month a period starts on: 1 for calendar periods, 15 for 15th-to-14th.
    #[serde(default = "one")]
    pub start_day: u8,
    /// Days after the period's last day by which the report is due.
    #[serde(default)]
    pub due_days_after_end: u16,
    /// Year periods only: the month the year ends in (12 when absent). With `start_day: 15`
    /// and `year_end_month: 10`, the year `2026` runs from 15/10/2025 to 14/10/2026.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year_end_month: Option<u8>,
}

fn one() -> u8 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodLength {
    Month,
    Quarter,
    HalfYear,
    Year,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeriodError {
    #[error("{0:?} is not a period of this template (expected e.g. 2026-11, 2026-Q4, 2026-H2 or 2026)")]
    BadKey(String),
    #[error("start_day must be between 1 and 28")]
    BadStartDay,
    #[error("year_end_month must be between 1 and 12, and is for year periods only")]
    BadYearEnd,
}

/// First and last day of a period, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub start: Date,
    pub end: Date,
    pub due: Date,
}

impl PeriodSpec {
    pub fn check(&self) -> Result<(), PeriodError> {
        if !(1..=28).contains(&self.start_day) {
            return Err(PeriodError::BadStartDay);
        }
        match (self.year_end_month, self.length) {
            (None, _) => Ok(()),
            (Some(m), PeriodLength::Year) if (1..=12).contains(&m) => Ok(()),
            _ => Err(PeriodError::BadYearEnd),
        }
    }

    /// The last month (1–12) of a year period.
    fn year_end(&self) -> i32 {
        self.year_end_month.unwrap_or(12) as i32
    }

    /// The bounds of the period named `key`.
    pub fn bounds(&self, key: &str) -> Result<Bounds, PeriodError> {
        self.check()?;
        let bad = || PeriodError::BadKey(key.to_owned());
        let (year, last_month) = self.parse_key(key).ok_or_else(bad)?;
        let months = match self.length {
            PeriodLength::Month => 1,
            PeriodLength::Quarter => 3,
            PeriodLength::HalfYear => 6,
            PeriodLength::Year => 12,
        };
        // Months are counted from year 0 so that stepping back across years is plain arithmetic.
        let end_index = year * 12 + last_month as i32 - 1;
        let start_index = end_index - months + 1;
        let (start, end) = if self.start_day == 1 {
            let start = month_day(start_index, 1).ok_or_else(bad)?;
            let next = month_day(end_index + 1, 1).ok_or_else(bad)?;
            (start, next.previous_day().ok_or_else(bad)?)
        } else {
            let start = month_day(start_index - 1, self.start_day).ok_or_else(bad)?;
            let end = month_day(end_index, self.start_day - 1).ok_or_else(bad)?;
            (start, end)
        };
        let due = end.checked_add(time::Duration::days(self.due_days_after_end as i64)).ok_or_else(bad)?;
        Ok(Bounds { start, end, due })
    }

    /// The key of the period containing `day`.
    pub fn key_for(&self, day: Date) -> String {
        // With a cut-off, days from `start_day` on belong to the next month's period.
        let mut index = day.year() * 12 + day.month() as i32 - 1;
        if self.start_day > 1 && day.day() >= self.start_day {
            index += 1;
        }
        let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
        match self.length {
            PeriodLength::Month => format!("{year:04}-{month:02}"),
            PeriodLength::Quarter => format!("{year:04}-Q{}", (month - 1) / 3 + 1),
            PeriodLength::HalfYear => format!("{year:04}-H{}", (month - 1) / 6 + 1),
            PeriodLength::Year => {
                // The year named Y ends in month `year_end` of Y.
                let year = (index - (self.year_end() - 1) + 11).div_euclid(12);
                format!("{year:04}")
            }
        }
    }

    /// (year, last month of the period) from a key of this spec's length.
    fn parse_key(&self, key: &str) -> Option<(i32, u8)> {
        let (year, rest) = match key.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (key, None),
        };
        if year.len() != 4 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let last_month = match (self.length, rest) {
            (PeriodLength::Month, Some(m)) if m.len() == 2 => m.parse::<u8>().ok().filter(|m| (1..=12).contains(m))?,
            (PeriodLength::Quarter, Some(q)) => {
                3 * q.strip_prefix('Q')?.parse::<u8>().ok().filter(|q| (1..=4).contains(q))?
            }
            (PeriodLength::HalfYear, Some(h)) => {
                6 * h.strip_prefix('H')?.parse::<u8>().ok().filter(|h| (1..=2).contains(h))?
            }
            (PeriodLength::Year, None) => self.year_end() as u8,
            _ => return None,
        };
        Some((year, last_month))
    }
}

fn month_day(index: i32, day: u8) -> Option<Date> {
    let month = Month::try_from((index.rem_euclid(12) + 1) as u8).ok()?;
    Date::from_calendar_date(index.div_euclid(12), month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn spec(length: PeriodLength, start_day: u8) -> PeriodSpec {
        PeriodSpec { length, start_day, due_days_after_end: 2, year_end_month: None }
    }

    #[test]
    fn calendar_periods_run_from_the_first_to_the_last_day() {
        let month = spec(PeriodLength::Month, 1).bounds("2026-02").unwrap();
        assert_eq!(
            (month.start, month.end, month.due),
            (date!(2026 - 02 - 01), date!(2026 - 02 - 28), date!(2026 - 03 - 02))
        );
        let q = spec(PeriodLength::Quarter, 1).bounds("2026-Q4").unwrap();
        assert_eq!((q.start, q.end), (date!(2026 - 10 - 01), date!(2026 - 12 - 31)));
        let y = spec(PeriodLength::Year, 1).bounds("2026").unwrap();
        assert_eq!((y.start, y.end), (date!(2026 - 01 - 01), date!(2026 - 12 - 31)));
    }

    #[test]
    fn fifteenth_to_fourteenth_periods_follow_the_administrative_rule() {
        let m = spec(PeriodLength::Month, 15).bounds("2026-01").unwrap();
        assert_eq!((m.start, m.end), (date!(2025 - 12 - 15), date!(2026 - 01 - 14)));
        let q = spec(PeriodLength::Quarter, 15).bounds("2026-Q1").unwrap();
        assert_eq!((q.start, q.end), (date!(2025 - 12 - 15), date!(2026 - 03 - 14)));
        let h = spec(PeriodLength::HalfYear, 15).bounds("2026-H1").unwrap();
        assert_eq!((h.start, h.end), (date!(2025 - 12 - 15), date!(2026 - 06 - 14)));
        let y = spec(PeriodLength::Year, 15).bounds("2026").unwrap();
        assert_eq!((y.start, y.end), (date!(2025 - 12 - 15), date!(2026 - 12 - 14)));
    }

    #[test]
    fn the_14th_and_the_15th_fall_in_different_periods() {
        let s = spec(PeriodLength::Month, 15);
        assert_eq!(s.key_for(date!(2026 - 11 - 14)), "2026-11");
        assert_eq!(s.key_for(date!(2026 - 11 - 15)), "2026-12");
        assert_eq!(s.key_for(date!(2026 - 12 - 20)), "2027-01");
        let cal = spec(PeriodLength::Quarter, 1);
        assert_eq!(cal.key_for(date!(2026 - 03 - 31)), "2026-Q1");
        assert_eq!(cal.key_for(date!(2026 - 04 - 01)), "2026-Q2");
    }

    #[test]
    fn a_year_may_end_in_another_month() {
        let s = PeriodSpec { year_end_month: Some(10), due_days_after_end: 26, ..spec(PeriodLength::Year, 15) };
        let y = s.bounds("2026").unwrap();
        assert_eq!((y.start, y.end, y.due), (date!(2025 - 10 - 15), date!(2026 - 10 - 14), date!(2026 - 11 - 09)));
        assert_eq!(s.key_for(date!(2026 - 10 - 14)), "2026");
        assert_eq!(s.key_for(date!(2026 - 10 - 15)), "2027");
        assert_eq!(s.key_for(date!(2025 - 10 - 15)), "2026");
        let cal = PeriodSpec { year_end_month: Some(6), ..spec(PeriodLength::Year, 1) };
        assert_eq!(cal.bounds("2026").unwrap().start, date!(2025 - 07 - 01));
        assert_eq!(cal.key_for(date!(2026 - 06 - 30)), "2026");
        assert_eq!(cal.key_for(date!(2026 - 07 - 01)), "2027");
        assert_eq!(spec(PeriodLength::Year, 15).key_for(date!(2026 - 12 - 14)), "2026");
        assert_eq!(spec(PeriodLength::Year, 15).key_for(date!(2026 - 12 - 15)), "2027");
        let bad = PeriodSpec { year_end_month: Some(10), ..spec(PeriodLength::Month, 1) };
        assert_eq!(bad.check(), Err(PeriodError::BadYearEnd));
    }

    #[test]
    fn malformed_period_keys_are_errors() {
        for key in ["2026", "2026-13", "2026-Q4", "26-01", "2026-1"] {
            assert!(spec(PeriodLength::Month, 1).bounds(key).is_err(), "{key}");
        }
        assert!(spec(PeriodLength::Quarter, 1).bounds("2026-Q5").is_err());
        assert!(spec(PeriodLength::Month, 29).bounds("2026-01").is_err());
    }
}
