//! The records of the touchpoint REST contract, as touchpoint holds them in memory.
//!
//! This module owns the wire shapes shared by every source (the REST client, the CSV directory
//! and the sandbox that serves them) and the lenient parsing the contract asks clients for:
//! timestamps with `Z`, with an offset, without one (UTC), date-only, or epoch milliseconds;
//! empty strings treated as absent. Absurd values (a year past 2100) fail the one record, never
//! the page. It does not own scoring, storage or transport.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod lenient;

pub use lenient::{one_line, parse_date, parse_timestamp};

/// Deserializes a timestamp leniently (see [`parse_timestamp`]), for records outside this
/// module that carry one.
pub fn deserialize_timestamp<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DateTime<Utc>, D::Error> {
    lenient::timestamp(d)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Held as a boxed `str`: a large book holds several ids per contact and account, and
        /// a box is a third smaller than a `String`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Box<str>);

        impl $name {
            /// Accepts any non-blank string; surrounding white space is trimmed.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let trimmed = raw.trim();
                if trimmed.is_empty() {
                    return Err(format!("{} is empty", stringify!($name)));
                }
                Ok(Self(trimmed.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = lenient::id_string(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A CRM account id (contract ids are strings).
    AccountId
);
id_type!(
    /// A CRM owner (CSM) id.
    OwnerId
);
id_type!(
    /// A CRM contact id.
    ContactId
);
id_type!(
    /// A CRM activity id.
    ActivityId
);
id_type!(
    /// The id of a survey response.
    ResponseId
);

/// An account of the book: `GET /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    #[serde(deserialize_with = "lenient::name")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub domain: Option<String>,
    #[serde(default)]
    pub owner_id: Option<OwnerId>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub basic_setup_done: Option<bool>,
    /// The original contract date (OCD) that tenure and survey waves count from.
    #[serde(default, deserialize_with = "lenient::opt_date")]
    pub contract_start_date: Option<NaiveDate>,
    /// An IANA zone name, kept as sent; it is resolved (or rejected) where it is used.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool_or_false")]
    pub archived: bool,
    #[serde(deserialize_with = "lenient::timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// An account owner, usually a CSM: `GET /v1/owners`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub id: OwnerId,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_name")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool_or_true")]
    pub active: bool,
}

/// The role a contact plays at their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    ExecutiveSponsor,
    Champion,
    Admin,
    EndUser,
    /// Any role the CRM names that the contract does not.
    #[serde(other)]
    Other,
}

impl Persona {
    /// Every value the contract lists, as it spells them.
    pub const LISTED: [Persona; 5] = [
        Persona::ExecutiveSponsor,
        Persona::Champion,
        Persona::Admin,
        Persona::EndUser,
        Persona::Other,
    ];

    /// The persona `text` names, ignoring case and surrounding space; `None` for a value the
    /// contract does not list (which touchpoint reads as [`Persona::Other`]).
    pub fn from_listed(text: &str) -> Option<Persona> {
        let text = text.trim();
        Self::LISTED
            .into_iter()
            .find(|persona| persona.as_str().eq_ignore_ascii_case(text))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Persona::ExecutiveSponsor => "executive_sponsor",
            Persona::Champion => "champion",
            Persona::Admin => "admin",
            Persona::EndUser => "end_user",
            Persona::Other => "other",
        }
    }
}

/// A person at an account: `GET /v1/contacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub account_id: AccountId,
    /// As sent; invalid addresses are kept here and rejected where an email would be sent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_name")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_persona")]
    pub persona: Option<Persona>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool_or_false")]
    pub email_opt_out: bool,
    #[serde(default)]
    pub merged_into: Option<ContactId>,
    #[serde(default, deserialize_with = "lenient::bool_or_false")]
    pub archived: bool,
    #[serde(deserialize_with = "lenient::timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    /// Archived and merged-away contacts are history: they count for nothing and get nothing.
    pub fn is_live(&self) -> bool {
        !self.archived && self.merged_into.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    Call,
    Meeting,
    Webinar,
    /// A type the contract does not define; such rows are ignored by scoring.
    #[serde(other)]
    Other,
}

impl ActivityType {
    /// Every value the contract lists.
    pub const LISTED: [ActivityType; 3] = [
        ActivityType::Call,
        ActivityType::Meeting,
        ActivityType::Webinar,
    ];

    /// The type `text` names, spelled exactly as the contract does; `None` for any other value
    /// (which touchpoint reads as [`ActivityType::Other`]).
    pub fn from_listed(text: &str) -> Option<ActivityType> {
        let text = text.trim();
        Self::LISTED.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::Call => "call",
            ActivityType::Meeting => "meeting",
            ActivityType::Webinar => "webinar",
            ActivityType::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Attended,
    NoShow,
    Canceled,
    Scheduled,
    #[serde(other)]
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Attended => "attended",
            Outcome::NoShow => "no_show",
            Outcome::Canceled => "canceled",
            Outcome::Scheduled => "scheduled",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A call, meeting or webinar attendance: `GET /v1/activities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: ActivityId,
    pub account_id: AccountId,
    #[serde(rename = "type")]
    pub kind: ActivityType,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub series: Option<String>,
    #[serde(deserialize_with = "lenient::timestamp")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default = "unknown_outcome", deserialize_with = "lenient::outcome")]
    pub outcome: Outcome,
    #[serde(default, deserialize_with = "lenient::id_list")]
    pub contact_ids: Vec<ContactId>,
    #[serde(deserialize_with = "lenient::timestamp")]
    pub updated_at: DateTime<Utc>,
}

fn unknown_outcome() -> Outcome {
    Outcome::Unknown
}

/// Use of one feature by one account over a window: `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub account_id: AccountId,
    pub feature: String,
    #[serde(deserialize_with = "lenient::count")]
    pub days_active: u32,
    #[serde(default, deserialize_with = "lenient::count")]
    pub event_count: u32,
    #[serde(default, deserialize_with = "lenient::count")]
    pub active_users: u32,
}

/// One account's use of one feature on one day: a row of a CSV book's `usage.csv`, before it is
/// aggregated into a [`UsageRow`] for a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageDay {
    pub account_id: AccountId,
    pub feature: String,
    #[serde(deserialize_with = "lenient::date")]
    pub date: NaiveDate,
    #[serde(default, deserialize_with = "lenient::count")]
    pub event_count: u32,
    #[serde(default, deserialize_with = "lenient::count")]
    pub active_users: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    Nps,
    Goal,
}

impl SurveyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyKind::Nps => "nps",
            SurveyKind::Goal => "goal",
        }
    }
}

/// A survey answer: `GET /v1/survey-responses` (collected elsewhere) or one touchpoint collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveyResponse {
    pub id: ResponseId,
    pub account_id: AccountId,
    #[serde(default)]
    pub contact_id: Option<ContactId>,
    pub survey: SurveyKind,
    #[serde(deserialize_with = "lenient::timestamp")]
    pub submitted_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "lenient::opt_nps_score")]
    pub score: Option<u8>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub goal_achieved: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub comment: Option<String>,
}

/// The page envelope of every list endpoint. `next_cursor` must be present: `null` ends the
/// list, while a page without the field is malformed (a proxy that dropped it would otherwise
/// pass off the first page as the whole list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub next_cursor: Option<String>,
}

/// Puts a parser's message the way a person fixing the data reads it: what was expected,
/// then what came. The parsers of this module already say it so; serde's own messages
/// ("invalid type: null, expected a string", "missing field `name`", "unknown variant `x`,
/// expected `nps` or `goal`") are turned round to match. Email addresses are masked.
pub fn plain_message(message: &str) -> String {
    let turned = if let Some(field) = message
        .strip_prefix("missing field ")
        .filter(|rest| rest.starts_with('`'))
    {
        format!("{field} is missing")
    } else {
        let body = ["invalid type: ", "invalid value: ", "unknown variant "]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix));
        match body.and_then(|rest| rest.split_once(", expected ")) {
            Some((found, expected)) => format!("expected {expected}, found {found}"),
            None => message.to_owned(),
        }
    };
    let turned = turned.replace("variant identifier", "one of the values the contract lists");
    crate::telemetry::mask_emails_in(&turned)
}

/// One record that could not be used, and why. Bad input costs one record, never the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The list it came from: `accounts`, `contacts`, ...
    pub dataset: String,
    /// The record's own id, when it could be read.
    pub record_id: Option<String>,
    /// The account it belongs to, when it could be read.
    pub account_id: Option<String>,
    pub reason: String,
}

impl Rejected {
    /// Describes a row that failed to parse, salvaging its `id` and `account_id` when present.
    pub fn from_json(dataset: &str, row: &serde_json::Value, reason: impl fmt::Display) -> Self {
        let field = |name: &str| match row.get(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let record_id = field("id").or_else(|| field("key"));
        let account_id = if dataset == "accounts" {
            record_id.clone()
        } else {
            field("account_id")
        };
        Self {
            dataset: dataset.to_owned(),
            record_id,
            account_id,
            reason: reason.to_string(),
        }
    }
}
