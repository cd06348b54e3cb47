//! Where account data comes from: the REST contract over HTTP, or a directory of CSV exports.
//!
//! Both implement [`Source`]: each list is walked once and every row is handed to a sink as it
//! is read, so a pull never holds more than a page (REST) or a line (CSV) of raw data. A row
//! that cannot be read reaches the sink as a [`Rejected`] record; a list that cannot be read to
//! its end fails with a [`SourceError`], and the puller then treats that data as missing, never
//! as empty.

pub mod csv_dir;
mod csv_source;
pub mod rest;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

pub use csv_source::CsvSource;
pub use rest::RestClient;

use crate::model::{
    Account, Activity, ActivityType, Contact, Owner, Rejected, SurveyResponse, UsageRow,
};

/// Why a list could not be read to its end, or a write could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("the CRM asked us to wait {}s{}", retry_after.as_secs(), if *daily { " (daily limit reached)" } else { "" })]
    RateLimited { retry_after: Duration, daily: bool },
    #[error("the CRM refused the API token (401): check TOUCHPOINT_SOURCE_TOKEN")]
    Unauthorized,
    #[error("the API token may not read this (403)")]
    Forbidden,
    #[error("the CRM does not have this endpoint or record (404)")]
    NotFound,
    #[error("the CRM is unavailable ({status} {title})")]
    Unavailable { status: u16, title: String },
    #[error("the CRM refused the request ({status} {title})")]
    Refused { status: u16, title: String },
    #[error("the CRM did not answer within the configured timeout")]
    Timeout,
    #[error("could not reach the CRM (check source.base_url): {0}")]
    Transport(String),
    #[error("a response was larger than the cap of {limit} bytes (source.max_body_bytes)")]
    BodyTooLarge { limit: u64 },
    #[error("{what} could not be read: {reason}")]
    Malformed { what: String, reason: String },
    #[error(
        "the CRM handed out a cursor twice on {path} (after page {page}); the list cannot be trusted"
    )]
    RepeatingCursor { path: String, page: u64 },
    #[error("could not read the CSV book: {0}")]
    Csv(String),
}

impl SourceError {
    /// Whether the same request may succeed if sent again: 5xx, 423, timeouts, lost
    /// connections, and 429s that ask for a wait no longer than `longest_wait`. A daily limit,
    /// or a wait past that, ends the pull cleanly instead of stalling the cycle.
    pub fn is_retryable(&self, longest_wait: Duration) -> bool {
        match self {
            SourceError::RateLimited { retry_after, daily } => {
                !daily && *retry_after <= longest_wait
            }
            SourceError::Unavailable { .. } | SourceError::Timeout | SourceError::Transport(_) => {
                true
            }
            _ => false,
        }
    }

    /// The wait the server asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Which activities to read: `since <= occurred_at < until`, of the given types.
#[derive(Debug, Clone)]
pub struct ActivityQuery {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub types: Vec<ActivityType>,
}

/// Which usage to read: per (account, feature) over `[window_end - window_days, window_end)`.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub window_end: NaiveDate,
    pub window_days: u32,
    pub features: Vec<String>,
}

/// Receives rows one at a time.
pub type Sink<'a, T> = &'a mut (dyn FnMut(Result<T, Rejected>) + Send);

/// A place touchpoint reads a book from.
///
/// The pull runs the lists of one phase concurrently inside one task, so these futures need
/// not be `Send`; that is why plain `async fn` is used here.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// A short description for logs and reports (never the token).
    fn describe(&self) -> String;
    /// What the source noticed about the data since the last call, beyond rejected rows: an
    /// id that one file carries on several rows, a value the contract does not list. Each
    /// note is one line of the run report's data warnings.
    fn take_notes(&self) -> Vec<String> {
        Vec::new()
    }
    async fn owners(&self, sink: Sink<'_, Owner>) -> Result<(), SourceError>;
    async fn accounts(&self, sink: Sink<'_, Account>) -> Result<(), SourceError>;
    async fn contacts(&self, sink: Sink<'_, Contact>) -> Result<(), SourceError>;
    async fn activities(
        &self,
        query: &ActivityQuery,
        sink: Sink<'_, Activity>,
    ) -> Result<(), SourceError>;
    async fn usage(&self, query: &UsageQuery, sink: Sink<'_, UsageRow>) -> Result<(), SourceError>;
    async fn survey_responses(
        &self,
        since: DateTime<Utc>,
        sink: Sink<'_, SurveyResponse>,
    ) -> Result<(), SourceError>;
}

impl Source for RestClient {
    fn describe(&self) -> String {
        format!("REST contract at {}", self.base_url())
    }

    async fn owners(&self, sink: Sink<'_, Owner>) -> Result<(), SourceError> {
        self.for_each("owners", "v1/owners", &[], sink)
            .await
            .map(drop)
    }

    async fn accounts(&self, sink: Sink<'_, Account>) -> Result<(), SourceError> {
        self.for_each("accounts", "v1/accounts", &[], sink)
            .await
            .map(drop)
    }

    async fn contacts(&self, sink: Sink<'_, Contact>) -> Result<(), SourceError> {
        self.for_each("contacts", "v1/contacts", &[], sink)
            .await
            .map(drop)
    }

    async fn activities(
        &self,
        query: &ActivityQuery,
        sink: Sink<'_, Activity>,
    ) -> Result<(), SourceError> {
        let types: Vec<&str> = query.types.iter().map(|t| t.as_str()).collect();
        let params = [
            ("since", rfc3339(query.since)),
            ("until", rfc3339(query.until)),
            ("types", types.join(",")),
        ];
        self.for_each("activities", "v1/activities", &params, sink)
            .await
            .map(drop)
    }

    async fn usage(&self, query: &UsageQuery, sink: Sink<'_, UsageRow>) -> Result<(), SourceError> {
        let params = [
            ("window_end", query.window_end.to_string()),
            ("window_days", query.window_days.to_string()),
            ("features", query.features.join(",")),
        ];
        self.for_each("usage", "v1/usage", &params, sink)
            .await
            .map(drop)
    }

    async fn survey_responses(
        &self,
        since: DateTime<Utc>,
        sink: Sink<'_, SurveyResponse>,
    ) -> Result<(), SourceError> {
        let params = [("since", rfc3339(since))];
        self.for_each("survey_responses", "v1/survey-responses", &params, sink)
            .await
            .map(drop)
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
