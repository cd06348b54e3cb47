//! The time windows of every measure, computed once from the config and `now`.
//!
//! One definition serves both the puller (which asks its source for exactly these windows and
//! pre-filters records with them) and the rules (which re-check evidence against them), so
//! the two can never disagree about what "the last 90 days" means. See the parent module for
//! the definitions.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::config::ScoringConfig;

/// A half-open interval of instants, `start <= t < end`, like the contract's `since`/`until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The last `days` days as of `now`: `[now - days × 24 h, now)`.
    pub fn last_days(now: DateTime<Utc>, days: u32) -> Window {
        Window {
            start: now - TimeDelta::days(i64::from(days)),
            end: now,
        }
    }

    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }
}

/// A half-open run of whole UTC days, `start <= day < end`: the shape of the contract's usage
/// window, where `window_end` itself is outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayWindow {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DayWindow {
    /// The `days` whole days before `today`.
    pub fn last_days(today: NaiveDate, days: u32) -> DayWindow {
        DayWindow {
            start: today - TimeDelta::days(i64::from(days)),
            end: today,
        }
    }

    /// The window's length, i.e. the usage endpoint's `window_days`.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    /// The last day inside the window, for people who read "to" as inclusive.
    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(self.end)
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start <= day && day < self.end
    }
}

/// Every window of one scoring run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    pub now: DateTime<Utc>,
    /// `now`'s UTC date: tenure counts to it and the usage window ends at it.
    pub today: NaiveDate,
    /// Meetings and office hours count when they occurred in here.
    pub engagement: Window,
    /// The usage source is asked for `window_end = adoption.end`, `window_days = adoption.days()`.
    pub adoption: DayWindow,
    /// Goal answers count when submitted in here; goal surveys when sent in here and old
    /// enough (see `survey_sent_by`).
    pub roi: Window,
    /// `now - survey_min_age_days × 24 h`: a goal survey sent at or before this instant has
    /// had its fair chance to be answered ("at least 14 days ago" includes exactly 14 days).
    pub survey_sent_by: DateTime<Utc>,
}

impl Windows {
    pub fn new(config: &ScoringConfig, now: DateTime<Utc>) -> Windows {
        let today = now.date_naive();
        let roi = config.roi();
        Windows {
            now,
            today,
            engagement: Window::last_days(now, config.engagement().window_days),
            adoption: DayWindow::last_days(today, config.adoption().window_days),
            roi: Window::last_days(now, roi.window_days),
            survey_sent_by: now - TimeDelta::days(i64::from(roi.survey_min_age_days)),
        }
    }

    /// Whole days from the original contract date to today; negative when the contract
    /// starts in the future.
    pub fn tenure_days(&self, contract_start: NaiveDate) -> i64 {
        (self.today - contract_start).num_days()
    }

    /// Whether a goal survey sent at `sent_at` means the account was "asked" in the ROI window.
    pub fn survey_counts(&self, sent_at: DateTime<Utc>) -> bool {
        self.roi.contains(sent_at) && sent_at <= self.survey_sent_by
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::scoring::config::RawScoringConfig;

    fn config() -> ScoringConfig {
        ScoringConfig::from_raw(RawScoringConfig::default()).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn instant_window_is_half_open() {
        let now = Utc.with_ymd_and_hms(2025, 1, 15, 9, 30, 0).unwrap();
        let window = Window::last_days(now, 90);
        assert!(window.contains(now - TimeDelta::days(90)));
        assert!(!window.contains(now - TimeDelta::days(90) - TimeDelta::seconds(1)));
        assert!(window.contains(now - TimeDelta::seconds(1)));
        assert!(!window.contains(now));
    }

    #[test]
    fn usage_window_is_the_whole_days_before_today() {
        let now = Utc.with_ymd_and_hms(2025, 3, 1, 17, 0, 0).unwrap();
        let windows = Windows::new(&config(), now);
        assert_eq!(windows.adoption.start, date(2025, 1, 30));
        assert_eq!(windows.adoption.end, date(2025, 3, 1));
        assert_eq!(windows.adoption.days(), 30);
        assert_eq!(windows.adoption.last_day(), date(2025, 2, 28));
        assert!(!windows.adoption.contains(date(2025, 3, 1)));
    }

    #[test]
    fn at_midnight_the_two_meanings_coincide() {
        let now = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let days = Window::last_days(now, 30);
        let dates = DayWindow::last_days(now.date_naive(), 30);
        assert_eq!(days.start.date_naive(), dates.start);
        assert_eq!(days.end.date_naive(), dates.end);
    }

    #[test]
    fn survey_counts_from_exactly_the_minimum_age() {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let windows = Windows::new(&config(), now);
        let fourteen_days = now - TimeDelta::days(14);
        assert!(windows.survey_counts(fourteen_days));
        assert!(!windows.survey_counts(fourteen_days + TimeDelta::seconds(1)));
        assert!(windows.survey_counts(now - TimeDelta::days(365)));
        assert!(!windows.survey_counts(now - TimeDelta::days(365) - TimeDelta::seconds(1)));
    }

    #[test]
    fn tenure_counts_whole_days_across_month_ends_and_leap_days() {
        let windows = |y, m, d| {
            let now = Utc.from_utc_datetime(&date(y, m, d).and_hms_opt(23, 59, 0).unwrap());
            Windows::new(&config(), now)
        };
        assert_eq!(windows(2024, 3, 1).tenure_days(date(2024, 1, 31)), 30);
        assert_eq!(windows(2025, 3, 1).tenure_days(date(2025, 1, 31)), 29);
        assert_eq!(windows(2025, 2, 28).tenure_days(date(2024, 2, 29)), 365);
        assert_eq!(windows(2024, 2, 29).tenure_days(date(2024, 2, 29)), 0);
        assert_eq!(windows(2024, 2, 28).tenure_days(date(2024, 2, 29)), -1);
    }
}
