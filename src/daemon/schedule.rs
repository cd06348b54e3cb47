//! A cron schedule read in a time zone: when it fires next, and when it last fired.
//!
//! This is the pure part of scheduling, with the clock passed in. Expressions have six fields
//! and start with *seconds* (`0 30 9 * * MON-FRI`: 09:30:00 on weekdays), the dialect that
//! tokio-cron-scheduler reads, parsed by the same library with the same options, so both agree
//! on what an expression means. Times are computed in the zone itself, so a schedule keeps its
//! local wall-clock time across daylight-saving changes:
//!
//! - a fixed time that falls in the hour skipped in spring (02:30 on that night in Berlin)
//!   fires once, at the first valid instant after the gap (03:00);
//! - a fixed time that falls in the hour repeated in autumn fires once, at its first
//!   occurrence;
//! - an interval (`0 */15 * * * *`) fires at every real instant that matches.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// How far back [`Schedule::last_at_or_before`] looks. A schedule that fires less often than
/// this (say, on 29 February only) has no "last" fire time, and so is never caught up.
const LOOK_BACK_DAYS: i64 = 400;

/// A parsed cron expression and the zone it is read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses a six-field expression (seconds first) to be read in `zone`.
    pub fn parse(expression: &str, zone: Tz) -> Result<Self, String> {
        let expression = expression.trim();
        if expression.split_whitespace().count() != 6 {
            return Err(format!(
                "{expression:?} must have six fields, starting with seconds \
                 (\"0 0 6 * * *\" is 06:00:00 every day)"
            ));
        }
        let cron = parser()
            .parse(expression)
            .map_err(|e| format!("{expression:?} is not a cron expression: {e}"))?;
        Ok(Self {
            expression: expression.to_owned(),
            cron,
            zone,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `at`.
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_second(at).with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest fire time at or before `at`: the run that should have happened by then.
    ///
    /// The library's backward search settles a time inside a spring-forward gap on the last
    /// second *before* the gap, while its forward search (which the ticker follows) settles it
    /// on the first second after. So this steps back to a fire time and then walks forward,
    /// and the answer is always an instant the forward schedule really fires at.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = whole_second(at);
        let local = at.with_timezone(&self.zone);
        let back = self.cron.find_previous_occurrence(&local, true).ok()?;
        if at.signed_duration_since(back.with_timezone(&Utc)) > TimeDelta::days(LOOK_BACK_DAYS) {
            return None;
        }
        let mut cursor = back.with_timezone(&Utc) - TimeDelta::seconds(1);
        let mut last = None;
        while let Some(next) = self.next_after(cursor).filter(|next| *next <= at) {
            last = Some(next);
            cursor = next;
        }
        last
    }
}

impl FromStr for Schedule {
    type Err = String;

    /// Parses an expression read in UTC.
    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Self::parse(expression, Tz::UTC)
    }
}

/// `at` without its fraction of a second. The cron library carries a start time's fraction
/// into the times it finds, and fire times must be whole seconds to compare as equal.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

/// The parser options tokio-cron-scheduler uses: seconds required, and a day-of-month and a
/// day-of-week that must both match when both are given.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn berlin(expression: &str) -> Schedule {
        Schedule::parse(expression, chrono_tz::Europe::Berlin).expect("a valid expression")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test timestamp")
            .with_timezone(&Utc)
    }

    /// Every fire time in `[from, until)`.
    fn fires(schedule: &Schedule, from: &str, until: &str) -> Vec<DateTime<Utc>> {
        let (mut at, until) = (utc(from) - TimeDelta::seconds(1), utc(until));
        let mut all = Vec::new();
        while let Some(next) = schedule.next_after(at).filter(|next| *next < until) {
            all.push(next);
            at = next;
        }
        all
    }

    fn local_days(schedule: &Schedule, times: &[DateTime<Utc>]) -> Vec<NaiveDate> {
        times
            .iter()
            .map(|t| t.with_timezone(&schedule.zone()).date_naive())
            .collect()
    }

    #[test]
    fn expressions_start_with_seconds() {
        let every_two = Schedule::from_str("*/2 * * * * *").expect("six fields");
        let next = every_two.next_after(utc("2025-06-02T10:00:01Z"));
        assert_eq!(next, Some(utc("2025-06-02T10:00:02Z")));

        let five_fields = Schedule::from_str("0 6 * * *").unwrap_err();
        assert!(five_fields.contains("six fields"), "{five_fields}");
        assert!(Schedule::from_str("0 0 25 * * *").is_err(), "hour 25");
    }

    #[test]
    fn fire_times_are_whole_seconds_whatever_the_instant_asked_about() {
        let every_two = Schedule::from_str("*/2 * * * * *").expect("six fields");
        let at = utc("2025-06-02T10:00:03.250Z");

        assert_eq!(
            every_two.last_at_or_before(at),
            Some(utc("2025-06-02T10:00:02Z"))
        );
        assert_eq!(every_two.next_after(at), Some(utc("2025-06-02T10:00:04Z")));
        let later = at + TimeDelta::milliseconds(600);
        assert_eq!(
            every_two.last_at_or_before(later),
            every_two.last_at_or_before(at)
        );
    }

    #[test]
    fn a_daily_time_keeps_its_local_hour_across_both_changes() {
        let nine = berlin("0 0 9 * * *");

        let spring = fires(&nine, "2025-03-28T00:00:00Z", "2025-04-02T00:00:00Z");
        let autumn = fires(&nine, "2025-10-24T00:00:00Z", "2025-10-29T00:00:00Z");

        for times in [&spring, &autumn] {
            assert_eq!(times.len(), 5, "once a day: {times:?}");
            let local_hours: Vec<u32> = times
                .iter()
                .map(|t| t.with_timezone(&nine.zone()).hour())
                .collect();
            assert_eq!(local_hours, vec![9; 5]);
        }
        assert_eq!(spring[1], utc("2025-03-29T08:00:00Z"), "winter time, UTC+1");
        assert_eq!(spring[2], utc("2025-03-30T07:00:00Z"), "summer time, UTC+2");
        assert_eq!(autumn[2], utc("2025-10-26T08:00:00Z"), "back to UTC+1");
    }

    #[test]
    fn a_time_in_the_skipped_hour_fires_once_right_after_the_gap() {
        let half_past_two = berlin("0 30 2 * * *");

        let times = fires(
            &half_past_two,
            "2025-03-29T00:00:00Z",
            "2025-04-01T00:00:00Z",
        );

        let days = local_days(&half_past_two, &times);
        let expected: Vec<NaiveDate> = [29, 30, 31]
            .map(|d| NaiveDate::from_ymd_opt(2025, 3, d).expect("a date"))
            .into();
        assert_eq!(days, expected, "{times:?}");
        assert_eq!(
            times[1],
            utc("2025-03-30T01:00:00Z"),
            "03:00 local, after the gap"
        );
    }

    #[test]
    fn a_time_in_the_repeated_hour_fires_once() {
        let half_past_two = berlin("0 30 2 * * *");

        let times = fires(
            &half_past_two,
            "2025-10-25T00:00:00Z",
            "2025-10-28T00:00:00Z",
        );

        assert_eq!(times.len(), 3, "{times:?}");
        assert_eq!(
            times[1],
            utc("2025-10-26T00:30:00Z"),
            "the first 02:30 (UTC+2)"
        );
    }

    #[test]
    fn an_interval_fires_at_every_real_instant_and_never_twice_at_one() {
        let quarter = berlin("0 */15 * * * *");

        for (from, until) in [
            ("2025-03-30T00:00:00Z", "2025-03-30T03:00:00Z"),
            ("2025-10-26T00:00:00Z", "2025-10-26T03:00:00Z"),
        ] {
            let times = fires(&quarter, from, until);
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            let gaps: Vec<i64> = times
                .windows(2)
                .map(|w| (w[1] - w[0]).num_minutes())
                .collect();
            assert!(gaps.iter().all(|g| *g <= 75), "no long hole: {gaps:?}");
        }
    }

    #[test]
    fn the_last_fire_time_is_one_the_forward_schedule_really_fires_at() {
        let half_past_two = berlin("0 30 2 * * *");
        let nine = berlin("0 0 9 * * *");

        let noon_after_gap = utc("2025-03-30T10:00:00Z");

        assert_eq!(
            half_past_two.last_at_or_before(noon_after_gap),
            Some(utc("2025-03-30T01:00:00Z"))
        );
        assert_eq!(
            nine.last_at_or_before(noon_after_gap),
            Some(utc("2025-03-30T07:00:00Z"))
        );
        let exactly = utc("2025-03-30T07:00:00Z");
        assert_eq!(nine.last_at_or_before(exactly), Some(exactly), "inclusive");
        assert_eq!(
            nine.last_at_or_before(exactly - TimeDelta::seconds(1)),
            Some(utc("2025-03-29T08:00:00Z")),
            "the day before, in winter time"
        );
    }

    #[test]
    fn the_last_and_next_fire_times_bracket_any_instant() {
        let schedules = [
            berlin("0 0 9 * * *"),
            berlin("0 30 2 * * *"),
            berlin("0 */15 * * * *"),
            Schedule::parse("0 0 6 * * MON", chrono_tz::America::New_York).expect("valid"),
        ];
        let mut at = utc("2025-03-29T00:00:07Z");
        let until = utc("2025-04-01T00:00:00Z");
        while at < until {
            for schedule in &schedules {
                let last = schedule.last_at_or_before(at).expect("a last fire");
                let next = schedule.next_after(at).expect("a next fire");
                assert!(last <= at && at < next, "{} at {at}", schedule.expression());
                assert_eq!(
                    schedule.next_after(last - TimeDelta::seconds(1)),
                    Some(last)
                );
            }
            at += TimeDelta::minutes(47);
        }
    }
}
