//! Field parsers that accept what real CRMs and CSV exports send, and reject what is absurd.
//!
//! Each one works for JSON (typed values) and for CSV (every cell a string, an empty cell
//! absent). A value that cannot be read fails its record only; the caller turns that into a
//! [`super::Rejected`] with the parser's message as the reason.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use super::{ContactId, Outcome, Persona};

/// The latest year a date or timestamp may carry; anything later is a bridge bug, not data.
const LAST_SANE_YEAR: i32 = 2100;
/// The earliest year accepted, for the same reason.
const FIRST_SANE_YEAR: i32 = 1900;
/// Numbers at or above this are epoch milliseconds; below it, epoch seconds. 10^11 seconds
/// is the year 5138 and 10^11 milliseconds is 1973, so the two readings cannot be confused
/// for any date a CRM holds.
const EPOCH_MILLIS_FLOOR: i64 = 100_000_000_000;
/// How much of a rejected value a reason quotes: enough to find the cell, not a whole
/// paragraph that was pasted into the wrong column.
const QUOTED_CHARS: usize = 40;

/// What each parser expects, as a rejection says it: "expected true or false, found ...".
const BOOLEAN: &str = "true or false";
const WHOLE_NUMBER: &str = "a whole number";
const TIMESTAMP: &str = "an RFC 3339 timestamp, a date or epoch milliseconds";
const DATE: &str = "a date (YYYY-MM-DD)";
const ID: &str = "an id";
const NPS_SCORE: &str = "a score from 0 to 10";
const ONE_VALUE: &str = "a single value";

/// One value as a CRM or a CSV cell sends it, before it is read as what its field needs.
enum Scalar {
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
}

impl Scalar {
    /// The value as text, for fields that keep text whatever was sent (a zone, a domain).
    fn into_text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.trim().to_owned(),
        }
    }
}

/// The value as a rejection quotes it: text in quotes, cut short, email addresses masked.
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Text(s) => write!(f, "{:?}", quoted(s)),
        }
    }
}

fn quoted(text: &str) -> String {
    let masked = crate::telemetry::mask_emails_in(text.trim());
    if masked.chars().count() <= QUOTED_CHARS {
        return masked;
    }
    let cut: String = masked.chars().take(QUOTED_CHARS).collect();
    format!("{cut}...")
}

/// The reason every parser gives: what the field needs and what came instead.
fn unexpected(expected: &str, found: impl fmt::Display) -> String {
    format!("expected {expected}, found {found}")
}

/// Reads one value of any kind. `null`, an absent field, an empty CSV cell and blank text are
/// all `None`; a list or an object is refused with what the field expected.
struct ScalarVisitor {
    expected: &'static str,
}

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Option<Scalar>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Int(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Int(v.into())))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Int(v)))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        let value = i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int);
        Ok(Some(value))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!v.trim().is_empty()).then(|| Scalar::Text(v.to_owned())))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom(unexpected(self.expected, "a list")))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom(unexpected(self.expected, "an object")))
    }
}

/// Reads an optional scalar for a field that expects `expected`.
fn opt_scalar<'de, D: Deserializer<'de>>(
    d: D,
    expected: &'static str,
) -> Result<Option<Scalar>, D::Error> {
    d.deserialize_option(ScalarVisitor { expected })
}

/// Parses a timestamp: RFC 3339 with `Z` or an offset, a date-time without offset (UTC), a
/// date alone (midnight UTC), or epoch seconds / milliseconds as a number or numeric string.
pub fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, String> {
    let text = raw.trim();
    let found = || format!("{:?}", quoted(text));
    let parsed = if let Ok(number) = text.parse::<i64>() {
        from_epoch(number).ok_or_else(|| unexpected(TIMESTAMP, found()))
    } else if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        Ok(with_offset.with_timezone(&Utc))
    } else if let Ok(with_offset) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        Ok(with_offset.with_timezone(&Utc))
    } else if let Some(naive) = naive_date_time(text) {
        Ok(Utc.from_utc_datetime(&naive))
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)))
    } else {
        Err(unexpected(TIMESTAMP, found()))
    };
    parsed.and_then(|at| sane(at, found()))
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

fn from_epoch(number: i64) -> Option<DateTime<Utc>> {
    if number.abs() >= EPOCH_MILLIS_FLOOR {
        DateTime::from_timestamp_millis(number)
    } else {
        DateTime::from_timestamp(number, 0)
    }
}

/// Refuses a year no CRM record can carry, quoting the value as it was `found`.
fn sane(at: DateTime<Utc>, found: String) -> Result<DateTime<Utc>, String> {
    let year = at.year();
    if (FIRST_SANE_YEAR..=LAST_SANE_YEAR).contains(&year) {
        return Ok(at);
    }
    let expected = format!("a time in the years {FIRST_SANE_YEAR} to {LAST_SANE_YEAR}");
    Err(unexpected(&expected, format!("{found} (the year {year})")))
}

/// Parses a calendar date: `YYYY-MM-DD`, or any timestamp [`parse_timestamp`] accepts (its UTC
/// date).
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let text = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
        return sane(midnight, format!("{:?}", quoted(text))).map(|at| at.date_naive());
    }
    parse_timestamp(text)
        .map(|at| at.date_naive())
        .map_err(|_| unexpected(DATE, format!("{:?}", quoted(text))))
}

fn scalar_timestamp(value: Scalar) -> Result<DateTime<Utc>, String> {
    let epoch = match &value {
        Scalar::Text(text) => return parse_timestamp(text),
        Scalar::Int(number) => i64::try_from(*number).ok(),
        // Whole seconds or milliseconds; a fraction of a second is dropped.
        Scalar::Float(number) if number.is_finite() && number.abs() < 9.0e18 => {
            Some(number.trunc() as i64)
        }
        Scalar::Float(_) | Scalar::Bool(_) => None,
    };
    let at = epoch
        .and_then(from_epoch)
        .ok_or_else(|| unexpected(TIMESTAMP, &value))?;
    sane(at, value.to_string())
}

pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let value = opt_scalar(d, TIMESTAMP)?
        .ok_or_else(|| D::Error::custom(unexpected(TIMESTAMP, "nothing")))?;
    scalar_timestamp(value).map_err(D::Error::custom)
}

pub(super) fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let Some(value) = opt_scalar(d, DATE)? else {
        return Ok(None);
    };
    let date = match value {
        Scalar::Text(text) => parse_date(&text),
        other => scalar_timestamp(other).map(|at| at.date_naive()),
    };
    date.map(Some).map_err(D::Error::custom)
}

pub(super) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    opt_date(d)?.ok_or_else(|| D::Error::custom(unexpected(DATE, "nothing")))
}

pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_scalar(d, ONE_VALUE)?.map(Scalar::into_text))
}

/// A name people read (of an account, owner or contact) on one line: see [`one_line`]. A name
/// with nothing left is no name.
pub(super) fn opt_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_string(d)?
        .map(|text| one_line(&text))
        .filter(|text| !text.is_empty()))
}

pub(super) fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(one_line(&String::deserialize(d)?))
}

/// The longest name [`one_line`] keeps, in characters; longer ones are cut and end in `…`.
const NAME_CHARS: usize = 200;

/// CRM text made fit for one line of a table, a log, a task title or a mail header: line
/// breaks, tabs and other whitespace become single spaces; any other control character (NUL,
/// DEL...) and the bidirectional controls that reorder what follows them (U+202A-U+202E,
/// U+2066-U+2069) are dropped; the ends are trimmed, and a name longer than 200 characters is
/// cut.
pub fn one_line(raw: &str) -> String {
    let reorders = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let kept: String = raw
        .chars()
        .filter(|&c| (c.is_whitespace() || !c.is_control()) && !reorders(c))
        .collect();
    let line = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= NAME_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(NAME_CHARS - 1).collect();
    cut.push('…');
    cut
}

pub(super) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match opt_scalar(d, ID)? {
        Some(Scalar::Text(text)) => Ok(text),
        Some(Scalar::Int(number)) => Ok(number.to_string()),
        Some(other) => Err(D::Error::custom(unexpected(ID, other))),
        None => Err(D::Error::custom(unexpected(ID, "nothing"))),
    }
}

fn scalar_bool(value: Scalar) -> Result<bool, String> {
    match &value {
        Scalar::Bool(b) => Ok(*b),
        Scalar::Int(0) => Ok(false),
        Scalar::Int(1) => Ok(true),
        Scalar::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(unexpected(BOOLEAN, &value)),
        },
        _ => Err(unexpected(BOOLEAN, &value)),
    }
}

pub(super) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    opt_scalar(d, BOOLEAN)?
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
    let persona = opt_string(d)?.map(|text| Persona::from_listed(&text).unwrap_or(Persona::Other));
    Ok(persona)
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

/// Reads a JSON array of ids, or (from CSV) one cell of ids separated by `;` or `,`. Nothing
/// at all is an empty list.
struct IdListVisitor;

impl<'de> Visitor<'de> for IdListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of contact ids")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.split([';', ',']).map(str::to_owned).collect())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<String>()? {
            ids.push(id);
        }
        Ok(ids)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

pub(super) fn id_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContactId>, D::Error> {
    let raw = d.deserialize_option(IdListVisitor)?;
    Ok(raw
        .iter()
        .filter_map(|id| ContactId::parse(id).ok())
        .collect())
}

/// The value as a whole number, when it is one (`7`, `7.0`, `"7"`, `"1e3"`).
fn whole_number(value: &Scalar) -> Option<i128> {
    let whole = |number: f64| (number.is_finite() && number.fract() == 0.0).then_some(number);
    match value {
        Scalar::Int(number) => Some(*number),
        Scalar::Float(number) => whole(*number).map(|n| n as i128),
        Scalar::Text(text) => {
            let text = text.trim();
            text.parse::<i128>()
                .ok()
                .or_else(|| whole(text.parse::<f64>().ok()?).map(|n| n as i128))
        }
        Scalar::Bool(_) => None,
    }
}

fn scalar_count(value: Scalar) -> Result<u32, String> {
    let Some(number) = whole_number(&value) else {
        return Err(unexpected(WHOLE_NUMBER, &value));
    };
    if number < 0 {
        return Err(unexpected("a whole number of 0 or more", &value));
    }
    u32::try_from(number)
        .map_err(|_| unexpected(&format!("a whole number up to {}", u32::MAX), &value))
}

pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_scalar(d, WHOLE_NUMBER)?
        .map(scalar_count)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(D::Error::custom)
}

pub(super) fn opt_nps_score<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let Some(value) = opt_scalar(d, NPS_SCORE)? else {
        return Ok(None);
    };
    match whole_number(&value).and_then(|n| u8::try_from(n).ok()) {
        Some(score) if score <= 10 => Ok(Some(score)),
        _ => Err(D::Error::custom(unexpected(NPS_SCORE, &value))),
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
    fn names_are_read_onto_one_line() {
        use crate::model::{Account, Contact};
        let account: Account = serde_json::from_str(
            r#"{"id": "A-1", "name": "Acct\r\nSubject: injected\u0000 ",
                "updated_at": "2025-01-01"}"#,
        )
        .expect("an account");
        assert_eq!(account.name, "Acct Subject: injected");
        let contact: Contact = serde_json::from_str(
            r#"{"id": "P-1", "account_id": "A-1", "name": "\t\n", "updated_at": "2025-01-01"}"#,
        )
        .expect("a contact");
        assert_eq!(
            contact.name, None,
            "a name of control characters is no name"
        );
    }

    /// The reason a JSON row of type `T` is refused, as serde_json gives it.
    fn refusal<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        serde_json::from_str::<T>(json)
            .expect_err("the row is refused")
            .to_string()
    }

    #[test]
    fn values_a_field_cannot_hold_are_refused_saying_what_came() {
        use crate::model::{Account, UsageRow};
        let usage = |days: &str| {
            let row = format!(r#"{{"account_id": "A-1", "feature": "x", "days_active": {days}}}"#);
            refusal::<UsageRow>(&row)
        };
        let account = |id: &str| {
            let row = format!(r#"{{"id": {id}, "name": "A", "updated_at": "2024-12-01"}}"#);
            refusal::<Account>(&row)
        };

        assert!(usage("1e30").starts_with("expected a whole number up to 4294967295, found 1e30"));
        assert!(usage("-2").starts_with("expected a whole number of 0 or more, found -2"));
        assert!(usage("[3]").starts_with("expected a whole number, found a list"));
        assert!(
            usage("340282366920938463463374607431768211455").starts_with(
                "expected a whole number up to 4294967295, found 3.402823669209385e38"
            )
        );
        assert!(account(r#"{"value": "A-1"}"#).starts_with("expected an id, found an object"));
        assert!(account("null").starts_with("expected an id, found nothing"));
        assert!(account("true").starts_with("expected an id, found true"));
    }

    #[test]
    fn dates_accept_a_timestamp_and_keep_its_utc_day() {
        let leap = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(parse_date("2024-02-29"), Ok(leap));
        assert_eq!(parse_date("2024-02-29T23:30:00Z"), Ok(leap));
        assert_eq!(parse_date("2024-03-01T01:00:00+02:00"), Ok(leap));
    }
}
