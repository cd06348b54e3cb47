//! Field parsers that accept what real CRMs and CSV exports send, and reject what is absurd.
//!
//! Each one works for JSON (typed values) and for CSV (every cell a string, an empty cell
//! absent). A value that cannot be read fails its record only; the caller turns that into a
//! [`super::Rejected`] with the parser's message as the reason.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, de::Error as _};

use super::{ContactId, Outcome, Persona};

/// The latest year a date or timestamp may carry; anything later is a bridge bug, not data.
const LAST_SANE_YEAR: i32 = 2100;
/// The earliest year accepted, for the same reason.
const FIRST_SANE_YEAR: i32 = 1900;
/// Numbers at or above this are epoch milliseconds; below it, epoch seconds. 10^11 seconds
/// is the year 5138 and 10^11 milliseconds is 1973, so the two readings cannot be confused
/// for any date a CRM holds.
const EPOCH_MILLIS_FLOOR: i64 = 100_000_000_000;

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn describe(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => format!("{s:?}"),
        }
    }
}

/// Reads an optional scalar, treating a blank string like an absent value.
fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scalar>, D::Error> {
    Ok(match Option::<Scalar>::deserialize(d)? {
        Some(Scalar::Text(s)) if s.trim().is_empty() => None,
        other => other,
    })
}

/// Parses a timestamp: RFC 3339 with `Z` or an offset, a date-time without offset (UTC), a
/// date alone (midnight UTC), or epoch seconds / milliseconds as a number or numeric string.
pub fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, String> {
    let text = raw.trim();
    let parsed = if let Ok(number) = text.parse::<i64>() {
        from_epoch(number)
    } else if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        Ok(with_offset.with_timezone(&Utc))
    } else if let Ok(with_offset) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        Ok(with_offset.with_timezone(&Utc))
    } else if let Some(naive) = naive_date_time(text) {
        Ok(Utc.from_utc_datetime(&naive))
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)))
    } else {
        Err(format!(
            "{text:?} is not an RFC 3339 timestamp, a date or epoch milliseconds"
        ))
    };
    parsed.and_then(sane)
}

fn naive_date_time(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

fn from_epoch(number: i64) -> Result<DateTime<Utc>, String> {
    let parsed = if number.abs() >= EPOCH_MILLIS_FLOOR {
        DateTime::from_timestamp_millis(number)
    } else {
        DateTime::from_timestamp(number, 0)
    };
    parsed.ok_or_else(|| format!("epoch value {number} is out of range"))
}

fn sane(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let year = at.year();
    if (FIRST_SANE_YEAR..=LAST_SANE_YEAR).contains(&year) {
        Ok(at)
    } else {
        Err(format!("{} has the absurd year {year}", at.to_rfc3339()))
    }
}

/// Parses a calendar date: `YYYY-MM-DD`, or any timestamp [`parse_timestamp`] accepts (its UTC
/// date).
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let text = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return sane(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)))
            .map(|at| at.date_naive());
    }
    parse_timestamp(text).map(|at| at.date_naive())
}

fn scalar_timestamp(value: Scalar) -> Result<DateTime<Utc>, String> {
    match value {
        Scalar::Int(number) => from_epoch(number).and_then(sane),
        Scalar::Float(number) => from_epoch(number as i64).and_then(sane),
        Scalar::Text(text) => parse_timestamp(&text),
        Scalar::Bool(b) => Err(format!("{b} is not a timestamp")),
    }
}

pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let value = opt_scalar(d)?.ok_or_else(|| D::Error::custom("timestamp is missing"))?;
    scalar_timestamp(value).map_err(D::Error::custom)
}

pub(super) fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let Some(value) = opt_scalar(d)? else {
        return Ok(None);
    };
    let date = match value {
        Scalar::Text(text) => parse_date(&text),
        other => scalar_timestamp(other).map(|at| at.date_naive()),
    };
    date.map(Some).map_err(D::Error::custom)
}

pub(super) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    opt_date(d)?.ok_or_else(|| D::Error::custom("date is missing"))
}

pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_scalar(d)?.map(|value| match value {
        Scalar::Text(text) => text.trim().to_owned(),
        other => other.describe(),
    }))
}

pub(super) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Text(text) => Ok(text),
        Scalar::Int(number) => Ok(number.to_string()),
        other => Err(D::Error::custom(format!(
            "{} is not an id",
            other.describe()
        ))),
    }
}

fn scalar_bool(value: Scalar) -> Result<bool, String> {
    match value {
        Scalar::Bool(b) => Ok(b),
        Scalar::Int(0) => Ok(false),
        Scalar::Int(1) => Ok(true),
        Scalar::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(format!("{text:?} is not a boolean")),
        },
        other => Err(format!("{} is not a boolean", other.describe())),
    }
}

pub(super) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    opt_scalar(d)?
        .map(scalar_bool)
        .transpose()
        .map_err(D::Error::custom)
}

pub(super) fn bool_or_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    opt_bool(d).map(|b| b.unwrap_or(false))
}

pub(super) fn bool_or_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    opt_bool(d).map(|b| b.unwrap_or(true))
}

pub(super) fn opt_persona<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Persona>, D::Error> {
    let Some(text) = opt_string(d)? else {
        return Ok(None);
    };
    let persona = serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
        .unwrap_or(Persona::Other);
    Ok(Some(persona))
}

pub(super) fn outcome<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
    let Some(text) = opt_string(d)? else {
        return Ok(Outcome::Unknown);
    };
    Ok(
        serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
            .unwrap_or(Outcome::Unknown),
    )
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdList {
    List(Vec<String>),
    Joined(String),
}

/// A JSON array of ids, or (from CSV) one cell of ids separated by `;` or `,`.
pub(super) fn id_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContactId>, D::Error> {
    let raw: Vec<String> = match Option::<IdList>::deserialize(d)? {
        None => Vec::new(),
        Some(IdList::List(ids)) => ids,
        Some(IdList::Joined(text)) => text.split([';', ',']).map(str::to_owned).collect(),
    };
    Ok(raw
        .iter()
        .filter_map(|id| ContactId::parse(id).ok())
        .collect())
}

fn scalar_count(value: Scalar) -> Result<u32, String> {
    let number = match value {
        Scalar::Int(number) => number,
        Scalar::Float(number) if number.fract() == 0.0 => number as i64,
        Scalar::Text(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{text:?} is not a whole number"))?,
        other => return Err(format!("{} is not a whole number", other.describe())),
    };
    u32::try_from(number).map_err(|_| format!("{number} is not a count (0 or more)"))
}

pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_scalar(d)?
        .map(scalar_count)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(D::Error::custom)
}

pub(super) fn opt_nps_score<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let Some(value) = opt_scalar(d)? else {
        return Ok(None);
    };
    let number = scalar_count(value).map_err(D::Error::custom)?;
    match u8::try_from(number) {
        Ok(score) if score <= 10 => Ok(Some(score)),
        _ => Err(D::Error::custom(format!("score {number} is outside 0-10"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn timestamps_in_every_shape_a_crm_sends() {
        let noon = utc("2024-02-29T12:00:00Z");
        assert_eq!(parse_timestamp("2024-02-29T12:00:00Z"), Ok(noon));
        assert_eq!(parse_timestamp("2024-02-29T14:00:00+02:00"), Ok(noon));
        assert_eq!(parse_timestamp("2024-02-29T12:00:00"), Ok(noon));
        assert_eq!(parse_timestamp("2024-02-29 12:00:00"), Ok(noon));
        assert_eq!(parse_timestamp("1709208000000"), Ok(noon));
        assert_eq!(parse_timestamp("1709208000"), Ok(noon));
        assert_eq!(
            parse_timestamp("2024-02-29"),
            Ok(utc("2024-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn absurd_and_garbled_timestamps_are_refused() {
        assert!(
            parse_timestamp("2199-01-01T00:00:00Z")
                .unwrap_err()
                .contains("2199")
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2023-02-29").is_err());
        assert!(parse_date("9999-12-31").is_err());
    }

    #[test]
    fn dates_accept_a_timestamp_and_keep_its_utc_day() {
        let leap = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(parse_date("2024-02-29"), Ok(leap));
        assert_eq!(parse_date("2024-02-29T23:30:00Z"), Ok(leap));
        assert_eq!(parse_date("2024-03-01T01:00:00+02:00"), Ok(leap));
    }
}
