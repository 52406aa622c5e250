//! Time as the domain sees it: Unix seconds for events, and the calendar day in Vietnam
//! (UTC+7, one time zone nationwide) for dates such as `today` in expressions.
//!
//! Nothing in the domain reads the system clock directly: the device and the server each hold
//! a [`Clock`]. In production it is the system clock; a test or a demo pins it to a chosen
//! moment (`DIABAN_CLOCK=2026-12-31`), from which it runs on in real time, so that every
//! date-dependent behaviour can be checked on any day of the year.

use time::{Date, OffsetDateTime, UtcOffset};

/// The environment variable that pins the clock of a server or device process.
pub const CLOCK_ENV: &str = "DIABAN_CLOCK";

/// Vietnam's offset from UTC.
pub const VIETNAM: UtcOffset = time::macros::offset!(+7);

/// A bad `DIABAN_CLOCK` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a moment to pin the clock to (expected YYYY-MM-DD or an RFC 3339 date and time)")]
pub struct ClockError {
    pub value: String,
}

/// What "now" is: the system clock, or the system clock moved to start from a pinned moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Seconds added to the system clock.
    offset_secs: i64,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Clock {
        Clock { offset_secs: 0 }
    }

    /// A clock that reads `unix` (seconds) now and runs on from there.
    pub fn starting_at(unix: i64) -> Clock {
        Clock { offset_secs: unix - system_now() }
    }

    /// A clock that reads 09:00 in Vietnam on `day` now and runs on from there.
    pub fn on(day: Date) -> Clock {
        Clock::starting_at(nine_am(day))
    }

    /// Parses a pinned moment: `YYYY-MM-DD` (09:00 in Vietnam that day) or RFC 3339.
    pub fn parse(value: &str) -> Result<Clock, ClockError> {
        let bad = || ClockError { value: value.to_owned() };
        let value = value.trim();
        if let Some(day) = parse_date(value) {
            return Ok(Clock::on(day));
        }
        let moment = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
        Ok(Clock::starting_at(moment.unix_timestamp()))
    }

    /// The system clock, unless `DIABAN_CLOCK` pins it.
    pub fn from_env() -> Result<Clock, ClockError> {
        match std::env::var(CLOCK_ENV) {
            Ok(value) if !value.trim().is_empty() => Clock::parse(&value),
            _ => Ok(Clock::system()),
        }
    }

    /// Whether this clock was moved from the system clock.
    pub fn is_pinned(&self) -> bool {
        self.offset_secs != 0
    }

    /// Current time in Unix seconds.
    pub fn now(&self) -> i64 {
        system_now() + self.offset_secs
    }

    /// Today's date in Vietnam.
    pub fn today(&self) -> Date {
        day_of(self.now())
    }
}

fn system_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The date in Vietnam at `unix` seconds.
pub fn day_of(unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(VIETNAM).date()
}

/// 09:00 in Vietnam on `day`, as Unix seconds.
pub fn nine_am(day: Date) -> i64 {
    day.midnight().assume_offset(VIETNAM).unix_timestamp() + 9 * 3600
}

/// A date as `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month() as u8, date.day())
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_pinned_clock_reads_the_pinned_day_in_vietnam() {
        let clock = Clock::parse("2028-02-29").unwrap();
        assert_eq!(clock.today(), date!(2028 - 02 - 29));
        assert!(clock.is_pinned());
        // 23:30 UTC on 31 December is already 1 January in Vietnam.
        let clock = Clock::parse("2026-12-31T23:30:00Z").unwrap();
        assert_eq!(clock.today(), date!(2027 - 01 - 01));
    }

    #[test]
    fn a_pinned_clock_runs_on() {
        let clock = Clock::on(date!(2026 - 06 - 30));
        let first = clock.now();
        assert!((first - nine_am(date!(2026 - 06 - 30))).abs() <= 1);
        assert!(clock.now() >= first);
    }

    #[test]
    fn bad_moments_are_refused() {
        for bad in ["", "2026-13-01", "tomorrow", "2026-02-30"] {
            assert!(Clock::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_system_clock_is_not_moved() {
        let clock = Clock::system();
        assert!(!clock.is_pinned());
        assert!((clock.now() - system_now()).abs() <= 1);
    }
}
