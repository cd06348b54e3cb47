//! Time in the generated book: the anchor ("today" of the book), instants as Unix seconds, and
//! the calendars the book follows (business hours, the monthly webinar).

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;

use crate::sandbox::hash::Draws;

/// The seed and the anchor every generator draws from.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub seed: u64,
    pub anchor: NaiveDate,
}

impl Clock {
    /// Midnight UTC starting the anchor day; everything on record happened before it.
    pub fn now(&self) -> i64 {
        day_start(self.anchor)
    }

    /// Whole days from `day` to the anchor.
    pub fn days_ago(&self, day: NaiveDate) -> i64 {
        (self.anchor - day).num_days()
    }

    /// A second in the `span_days` days before the anchor.
    pub fn recent_second(&self, draws: &mut Draws, span_days: i64) -> i64 {
        self.second_before(draws, self.anchor, span_days)
    }

    /// A second in the `span_days` days before the day `end`.
    pub fn second_before(&self, draws: &mut Draws, end: NaiveDate, span_days: i64) -> i64 {
        let span = span_days.max(1) as u64 * 86_400;
        day_start(end) - 1 - draws.between(0, span) as i64
    }
}

/// Midnight UTC starting `day`, in Unix seconds.
pub fn day_start(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp()
}

/// The UTC day of an instant.
pub fn day_of(second: i64) -> NaiveDate {
    DateTime::from_timestamp(second, 0).map_or(NaiveDate::MIN, |at| at.date_naive())
}

/// An instant as RFC 3339 in UTC with a `Z`, the contract's timestamp shape.
pub fn iso(second: i64) -> String {
    DateTime::from_timestamp(second, 0)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A business-hours instant (09:00-17:00 local, Monday to Friday) on or just after `day`.
pub fn business_time(draws: &mut Draws, day: NaiveDate, zone: Option<Tz>) -> i64 {
    let weekday_skip = match day.weekday() {
        Weekday::Sat => 2,
        Weekday::Sun => 1,
        _ => 0,
    };
    let day = day + Days::new(weekday_skip);
    let minute = draws.between(9 * 60, 17 * 60) / 15 * 15;
    let local = day.and_time(NaiveTime::MIN) + chrono::TimeDelta::minutes(minute as i64);
    let zone = zone.unwrap_or(Tz::UTC);
    zone.from_local_datetime(&local)
        .earliest()
        .map_or_else(|| local.and_utc().timestamp(), |at| at.timestamp())
}

/// The monthly office-hours webinar: the second Tuesday of the month at 16:00 UTC.
pub fn office_hours(year: i32, month: u32) -> Option<i64> {
    let second_tuesday = NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Tue, 2)?;
    Some(day_start(second_tuesday) + 16 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_hours_are_local_and_on_weekdays() {
        let saturday = NaiveDate::from_ymd_opt(2024, 6, 1).expect("a date");
        let mut draws = Draws::new(&[1]);
        let at = business_time(&mut draws, saturday, Some(Tz::Asia__Tokyo));
        let local = DateTime::from_timestamp(at, 0)
            .expect("an instant")
            .with_timezone(&Tz::Asia__Tokyo);
        assert_eq!(local.weekday(), Weekday::Mon);
        assert!((9..17).contains(&chrono::Timelike::hour(&local)));
    }

    #[test]
    fn office_hours_fall_on_the_second_tuesday() {
        let at = office_hours(2024, 10).expect("a session");
        assert_eq!(iso(at), "2024-10-08T16:00:00Z");
    }
}
