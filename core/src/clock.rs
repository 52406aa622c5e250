//! Time as the domain sees it: Unix seconds for events, and the calendar day in Vietnam
//! (UTC+7, one time zone nationwide) for dates such as `today` in expressions.

use time::{Date, OffsetDateTime};

/// Current time in Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Today's date in Vietnam.
pub fn today() -> Date {
    OffsetDateTime::now_utc().to_offset(time::macros::offset!(+7)).date()
}

/// A date as `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month() as u8, date.day())
}
