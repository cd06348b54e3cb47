//! Send windows: may a survey reach this person now, judged by the clock on their wall?
//!
//! A recipient's time zone is the contact's, else the account's, else the configured default;
//! a name that is not an IANA zone falls through to the next one with a note, never a panic.
//! Turning a UTC instant into local time is always unambiguous, so "is it inside the window"
//! needs no DST care. Finding when the window next *opens* does: a local opening time can be
//! skipped by a spring-forward change (the window then opens at the first instant after the
//! gap) or occur twice in autumn (it opens at the first of the two). Nothing here reads the
//! clock.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::settings::ConfigError;

/// How far ahead [`SendWindow::next_opening`] looks: a window that opens on no day of two
/// weeks never opens (it cannot happen with at least one weekday and start < end).
const LOOKAHEAD_DAYS: u32 = 14;

/// Weekdays and local hours during which surveys may arrive: `start <= local time < end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    days: Vec<Weekday>,
    start: NaiveTime,
    /// `None` when the window runs to midnight (written `24:00`).
    end: Option<NaiveTime>,
}

/// A recipient's time zone and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub tz: Tz,
    /// Why a configured zone was passed over, if one was.
    pub note: Option<String>,
}

impl SendWindow {
    /// Builds a window; `key` names the config section in errors.
    pub fn parse(key: &str, days: &[String], start: &str, end: &str) -> Result<Self, ConfigError> {
        let days = days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                day.trim()
                    .parse::<Weekday>()
                    .map_err(|_| ConfigError::new(format!("{key}.days[{i}]"), "not a weekday"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if days.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.days"),
                "name at least one day",
            ));
        }
        let start = parse_time(&format!("{key}.start"), start)?
            .ok_or_else(|| ConfigError::new(format!("{key}.start"), "24:00 cannot start"))?;
        let end = parse_time(&format!("{key}.end"), end)?;
        if end.is_some_and(|end| end <= start) {
            return Err(ConfigError::new(
                format!("{key}.end"),
                "must be later than start (windows past midnight are not supported)",
            ));
        }
        Ok(Self { days, start, end })
    }

    /// A window open on every day, all day (the demo uses it).
    pub fn always() -> Self {
        Self {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            start: NaiveTime::MIN,
            end: None,
        }
    }

    /// Whether `at` falls inside the window on the wall clock of `tz`.
    pub fn contains(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz).naive_local();
        self.days.contains(&local.weekday()) && self.covers(local.time())
    }

    fn covers(&self, time: NaiveTime) -> bool {
        time >= self.start && self.end.is_none_or(|end| time < end)
    }

    /// The first instant at or after `at` inside the window, within two weeks.
    pub fn next_opening(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.contains(at, tz) {
            return Some(at);
        }
        let today = at.with_timezone(&tz).date_naive();
        (0..LOOKAHEAD_DAYS)
            .filter_map(|offset| today.checked_add_days(chrono::Days::new(offset.into())))
            .filter(|day| self.days.contains(&day.weekday()))
            .filter_map(|day| self.opening_on(day, tz))
            .find(|opening| *opening >= at)
    }

    /// The instant the window opens on local `day`, if it opens that day at all.
    fn opening_on(&self, day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
        let local = day.and_time(self.start);
        let instant = match tz.from_local_datetime(&local) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            // The earlier of the two: the window is open during both.
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => after_gap(local, tz)?,
        };
        let opened = instant.with_timezone(&tz).naive_local();
        (opened.date() == day && self.covers(opened.time())).then_some(instant)
    }
}

/// The first instant whose wall-clock time is at or past `local`, for a `local` that a
/// spring-forward change skipped: the end of the gap. Found by bisection between two instants
/// that bracket it whatever the zone's offset (offsets lie within -12h and +14h).
fn after_gap(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let reached = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0)
            .is_some_and(|at| at.with_timezone(&tz).naive_local() >= local)
    };
    let guess = local.and_utc().timestamp();
    let (mut before, mut after) = (guess - 15 * 3600, guess + 13 * 3600);
    if reached(before) || !reached(after) {
        return None;
    }
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if reached(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// `HH:MM` (24-hour); `24:00` is the end of the day and reads as `None`.
fn parse_time(key: &str, raw: &str) -> Result<Option<NaiveTime>, ConfigError> {
    let raw = raw.trim();
    if raw == "24:00" {
        return Ok(None);
    }
    NaiveTime::parse_from_str(raw, "%H:%M")
        .map(Some)
        .map_err(|_| ConfigError::new(key, format!("{raw:?} is not a time such as 09:00")))
}

/// The recipient's zone: the contact's, else the account's, else `default`. A name that is not
/// an IANA zone is passed over with a note saying so.
pub fn recipient_zone(contact: Option<&str>, account: Option<&str>, default: Tz) -> Zone {
    let mut notes = Vec::new();
    for (whose, name) in [("contact", contact), ("account", account)] {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            continue;
        };
        match name.parse::<Tz>() {
            Ok(tz) => {
                return Zone {
                    tz,
                    note: (!notes.is_empty()).then(|| notes.join("; ")),
                };
            }
            Err(_) => notes.push(format!(
                "the {whose}'s time zone {name:?} is not an IANA zone"
            )),
        }
    }
    if !notes.is_empty() {
        notes.push(format!("used the default {}", default.name()));
    }
    Zone {
        tz: default,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Berlin};
    use proptest::prelude::*;

    fn window(days: &[&str], start: &str, end: &str) -> SendWindow {
        let days: Vec<String> = days.iter().map(|d| (*d).to_owned()).collect();
        SendWindow::parse("w", &days, start, end).expect("a valid window")
    }

    fn weekdays() -> SendWindow {
        window(&["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 instant")
    }

    #[test]
    fn business_hours_follow_the_local_clock_across_both_dst_changes() {
        let w = weekdays();
        // New York: EST (UTC-5) before 9 March 2025, EDT (UTC-4) after; back on 2 November.
        assert!(w.contains(utc("2025-03-07T14:00:00Z"), New_York)); // Fri 09:00 EST
        assert!(!w.contains(utc("2025-03-07T13:59:59Z"), New_York));
        assert!(w.contains(utc("2025-03-10T13:00:00Z"), New_York)); // Mon 09:00 EDT
        assert!(!w.contains(utc("2025-03-10T12:59:59Z"), New_York));
        assert!(!w.contains(utc("2025-03-10T21:00:00Z"), New_York)); // 17:00 EDT: closed
        assert!(w.contains(utc("2025-11-03T14:00:00Z"), New_York)); // Mon 09:00 EST
        assert!(!w.contains(utc("2025-11-03T13:30:00Z"), New_York));
        // Berlin: CET (UTC+1), CEST (UTC+2) from 30 March 2025 to 26 October.
        assert!(w.contains(utc("2025-03-28T08:00:00Z"), Berlin)); // Fri 09:00 CET
        assert!(w.contains(utc("2025-03-31T07:00:00Z"), Berlin)); // Mon 09:00 CEST
        assert!(!w.contains(utc("2025-03-31T06:59:00Z"), Berlin));
        assert!(w.contains(utc("2025-10-27T08:00:00Z"), Berlin)); // Mon 09:00 CET
        assert!(!w.contains(utc("2025-10-27T07:30:00Z"), Berlin));
    }

    #[test]
    fn weekends_are_closed_in_the_recipient_zone_not_in_utc() {
        let w = weekdays();
        // Monday 01:00 UTC is still Sunday evening in New York.
        assert!(!w.contains(utc("2025-06-02T01:00:00Z"), New_York));
        assert_eq!(
            w.next_opening(utc("2025-06-02T01:00:00Z"), New_York),
            Some(utc("2025-06-02T13:00:00Z"))
        );
        // Friday 16:30 in Berlin; the next opening is Monday 09:00.
        assert_eq!(
            w.next_opening(utc("2025-06-06T14:30:00Z"), Berlin),
            Some(utc("2025-06-06T14:30:00Z"))
        );
        assert_eq!(
            w.next_opening(utc("2025-06-06T15:00:00Z"), Berlin),
            Some(utc("2025-06-09T07:00:00Z"))
        );
    }

    #[test]
    fn an_opening_time_skipped_by_spring_forward_opens_just_after_the_gap() {
        // 02:30 does not exist on 30 March 2025 in Berlin (02:00 -> 03:00).
        let w = window(&["sun"], "02:30", "04:00");
        let opening = w.next_opening(utc("2025-03-29T12:00:00Z"), Berlin);
        assert_eq!(opening, Some(utc("2025-03-30T01:00:00Z"))); // 03:00 CEST
        // In New York, 02:30 does not exist on 9 March 2025.
        let opening = w.next_opening(utc("2025-03-08T12:00:00Z"), New_York);
        assert_eq!(opening, Some(utc("2025-03-09T07:00:00Z"))); // 03:00 EDT
    }

    #[test]
    fn a_window_entirely_inside_the_gap_does_not_open_that_day() {
        let w = window(&["sun"], "02:00", "03:00");
        let opening = w.next_opening(utc("2025-03-29T12:00:00Z"), Berlin);
        assert_eq!(opening, Some(utc("2025-04-06T00:00:00Z"))); // next Sunday 02:00 CEST
        assert!(!w.contains(utc("2025-03-30T01:00:00Z"), Berlin));
    }

    #[test]
    fn a_repeated_local_hour_opens_at_its_first_occurrence_and_stays_open_for_both() {
        // 02:00-03:00 happens twice on 26 October 2025 in Berlin and 2 November in New York.
        let w = window(&["sun"], "02:00", "03:00");
        let opening = w.next_opening(utc("2025-10-25T12:00:00Z"), Berlin);
        assert_eq!(opening, Some(utc("2025-10-26T00:00:00Z"))); // 02:00 CEST
        assert!(w.contains(utc("2025-10-26T00:30:00Z"), Berlin)); // 02:30 CEST
        assert!(w.contains(utc("2025-10-26T01:30:00Z"), Berlin)); // 02:30 CET
        assert!(!w.contains(utc("2025-10-26T02:00:00Z"), Berlin)); // 03:00 CET
        let w = window(&["sun"], "01:00", "02:00");
        let opening = w.next_opening(utc("2025-11-01T12:00:00Z"), New_York);
        assert_eq!(opening, Some(utc("2025-11-02T05:00:00Z"))); // 01:00 EDT
        assert!(w.contains(utc("2025-11-02T06:30:00Z"), New_York)); // 01:30 EST
    }

    #[test]
    fn invalid_zone_names_fall_through_with_a_reason() {
        let zone = recipient_zone(Some("Mars/Olympus"), Some("Europe/Berlin"), chrono_tz::UTC);
        assert_eq!(zone.tz, Berlin);
        assert!(
            zone.note
                .as_deref()
                .is_some_and(|n| n.contains("Mars/Olympus"))
        );
        let zone = recipient_zone(Some(""), Some("\u{0}bad"), New_York);
        assert_eq!(zone.tz, New_York);
        assert!(zone.note.is_some());
        let zone = recipient_zone(Some("America/New_York"), None, chrono_tz::UTC);
        assert_eq!((zone.tz, zone.note), (New_York, None));
    }

    #[test]
    fn bad_window_settings_name_their_key() {
        let days = vec!["mon".to_owned()];
        let err = SendWindow::parse("s", &days, "17:00", "09:00").unwrap_err();
        assert_eq!(err.key, "s.end");
        let err = SendWindow::parse("s", &["funday".to_owned()], "09:00", "17:00").unwrap_err();
        assert_eq!(err.key, "s.days[0]");
        let err = SendWindow::parse("s", &days, "9am", "17:00").unwrap_err();
        assert_eq!(err.key, "s.start");
        assert!(SendWindow::parse("s", &days, "00:00", "24:00").is_ok());
    }

    proptest! {
        #[test]
        fn any_zone_and_instant_is_judged_without_panic(
            seconds in 0i64..4_102_444_800,
            zone in 0usize..chrono_tz::TZ_VARIANTS.len(),
            start in 0u32..23,
        ) {
            let tz = chrono_tz::TZ_VARIANTS[zone];
            let at = DateTime::from_timestamp(seconds, 0).unwrap_or_default();
            let w = window(&["mon", "sun"], &format!("{start:02}:30"), "24:00");
            let opening = w.next_opening(at, tz);
            if let Some(opening) = opening {
                prop_assert!(opening >= at);
                prop_assert!(w.contains(opening, tz));
            }
        }

        #[test]
        fn a_name_never_panics(name in ".{0,40}") {
            let zone = recipient_zone(Some(&name), Some(&name), chrono_tz::UTC);
            prop_assert!(zone.tz == chrono_tz::UTC || name.trim().parse::<Tz>().is_ok());
        }
    }
}
