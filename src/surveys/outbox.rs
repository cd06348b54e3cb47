//! The survey outbox in the store: every survey email, recorded under its key before it is
//! sent, and the addresses that get nothing.
//!
//! # States
//!
//! - `planned`: due and allowed; recorded, not yet handed to the mail backend. This run sends
//!   it, or the next one if this run stopped first.
//! - `deferred`: due and allowed, but over the per-cycle or per-day budget; first in line on
//!   the next run.
//! - `sending`: handed to the mail backend, no answer recorded yet. Nothing automatic happens
//!   to it: see below.
//! - `sent`: the backend accepted it; the Message-ID is recorded. Final.
//! - `failed_transient`: a temporary failure (SMTP 4xx, lost connection, timeout, TLS).
//!   Retried from `next_attempt_at`, with backoff, within the grace period and
//!   `mail.max_attempts`.
//! - `failed_permanent`: a permanent failure (SMTP 5xx), or too many temporary ones. Final
//!   unless an operator retries it once the cause is fixed (a relay that refused us, say:
//!   `touchpoint outbox --resolve KEY --as retry`, or `--retry-failed` for many), and only
//!   while its wave's grace period lasts; a 5xx refusing the recipient's mailbox also
//!   suppresses the address, and a suppressed address is never retried.
//! - `skipped`: never sent, because the wave was missed by more than the grace period, the
//!   grace period ended while it waited, or an operator skipped it. Final.
//!
//! # At most once
//!
//! A row moves to `sending` (and that is committed) *before* the message is handed to the
//! backend, and to `sent` or `failed_*` after its answer. A row still in `sending` when a run
//! starts means the process stopped in between, and nobody can know whether the server
//! accepted the message: the 250 reply to DATA may have arrived a moment before the crash.
//! touchpoint never re-sends such a row by itself, because sending the same wave twice is
//! the one thing it promises not to do; `sending` is on the at-most-once side. The row stays
//! visible (`plan`, `cycle` and `touchpoint outbox` list it) with its Message-ID, which an
//! operator can look up in the relay's log, and `touchpoint outbox --resolve KEY --as sent`
//! (or `retry`, or `skipped`) settles it. Every other state is safe to resume: a `planned`
//! row is sent by the next run, so a crash never loses an email either.
//!
//! The SQL is portable (TEXT timestamps, `$n` parameters, `ON CONFLICT` upserts).

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::cadence::{Email, History, Known};
use crate::store::{Store, timestamp};

/// Outbox rows older than this (by due day) are not read back for planning: the latest wave
/// of either survey is due at most about six months ago.
const HISTORY_DAYS: i64 = 200;
/// How far back the fatigue gap looks: its longest configurable value.
const FATIGUE_LOOKBACK_DAYS: i64 = 90;
/// The flag holding when touchpoint first recorded survey decisions in this store.
const SURVEYS_SINCE_FLAG: &str = "surveys_since";

/// Where an email is in its life; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Planned,
    Deferred,
    Sending,
    Sent,
    FailedTransient,
    FailedPermanent,
    Skipped,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Planned,
        State::Deferred,
        State::Sending,
        State::Sent,
        State::FailedTransient,
        State::FailedPermanent,
        State::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Deferred => "deferred",
            State::Sending => "sending",
            State::Sent => "sent",
            State::FailedTransient => "failed_transient",
            State::FailedPermanent => "failed_permanent",
            State::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more will ever happen to the email.
    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::FailedPermanent | State::Skipped)
    }
}

/// One outbox row, for people (`touchpoint outbox`) and for the send step.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub key: String,
    pub survey: String,
    pub wave: String,
    pub account_id: String,
    #[serde(skip)]
    pub account_name: String,
    pub contact_id: String,
    #[serde(skip)]
    pub recipient: String,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<String>,
    pub updated_at: String,
}

/// How an operator settles a row left in `sending` (or, for `Retry`, a `failed_permanent`
/// one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The relay's log shows it went out.
    Sent,
    /// It did not go out: send it on the next run (if its window is still open).
    Retry,
    /// Leave it unsent.
    Skipped,
}

/// What [`Store::resolve`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Done,
    /// No survey email has this key.
    Unknown,
    /// The email is in a state the resolution does not apply to: only `sending` rows are
    /// settled, and only `failed_permanent` rows are retried besides.
    WrongState {
        state: String,
    },
    /// A retry came too late: the wave's grace period ended at `closes_at`.
    Closed {
        closes_at: String,
    },
    /// A retry of an email whose address is suppressed (a hard bounce, an unsubscribe).
    Suppressed {
        reason: String,
    },
}

/// What [`Store::retry_failed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Emails planned again.
    pub retried: u64,
    /// Emails left failed because their wave's grace period has ended.
    pub closed: u64,
    /// Emails left failed because their address is suppressed.
    pub suppressed: u64,
}

/// How a send attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Try again from `retry_at`; `None` when the attempts are used up (then it is final).
    Transient {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    Permanent {
        error: String,
    },
}

impl Store {
    /// What the cadence needs to know from the outbox and the suppression list.
    pub async fn survey_history(&self, now: DateTime<Utc>) -> anyhow::Result<History> {
        let mut history = History::default();
        let since = (now - TimeDelta::days(HISTORY_DAYS))
            .date_naive()
            .to_string();
        let rows = sqlx::query(
            "SELECT key, person_wave, state, next_attempt_at FROM survey_outbox
             WHERE due_on >= $1",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await
        .context("failed to read the survey outbox")?;
        for row in rows {
            let key: String = row.get("key");
            let Some(state) = State::parse(row.get("state")) else {
                continue;
            };
            let next_attempt_at = parse_time(row.get("next_attempt_at"));
            history
                .person_waves
                .insert(row.get("person_wave"), key.clone());
            history.rows.insert(
                key,
                Known {
                    state,
                    next_attempt_at,
                },
            );
        }
        history.last_sent = self.last_sent(now).await?;
        history.suppressed = self.suppressed().await?;
        history.sent_today = self.sent_on_day(now).await?;
        history.surveys_since = self.surveys_since().await?;
        Ok(history)
    }

    /// When touchpoint first recorded survey decisions here: the flag, or for a store whose
    /// outbox predates the flag, its oldest row.
    async fn surveys_since(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        if let Some(value) = self.flag(SURVEYS_SINCE_FLAG).await? {
            return Ok(parse_time(Some(value)));
        }
        let oldest: Option<String> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM survey_outbox")
                .fetch_one(self.pool())
                .await
                .context("failed to read the oldest survey email")?;
        Ok(parse_time(oldest))
    }

    /// Remembers that surveying from this store began at `at`, unless it already had.
    pub async fn begin_surveying(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        if self.flag(SURVEYS_SINCE_FLAG).await?.is_none() {
            let since = self.surveys_since().await?.unwrap_or(at);
            self.set_flag(SURVEYS_SINCE_FLAG, &timestamp(since)).await?;
        }
        Ok(())
    }

    async fn last_sent(
        &self,
        now: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, DateTime<Utc>>> {
        let since = timestamp(now - TimeDelta::days(FATIGUE_LOOKBACK_DAYS));
        let rows = sqlx::query(
            "SELECT recipient, MAX(sent_at) AS last FROM survey_outbox
             WHERE state IN ('sent', 'sending') AND sent_at >= $1 GROUP BY recipient",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await
        .context("failed to read when addresses were last surveyed")?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get("recipient"), parse_time(r.get("last"))?)))
            .collect())
    }

    async fn suppressed(&self) -> anyhow::Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT address, reason FROM survey_suppressions")
            .fetch_all(self.pool())
            .await
            .context("failed to read the suppression list")?;
        Ok(rows
            .iter()
            .map(|r| (r.get("address"), r.get("reason")))
            .collect())
    }

    /// Emails sent or being sent during the UTC day of `now`.
    pub async fn sent_on_day(&self, now: DateTime<Utc>) -> anyhow::Result<u32> {
        let start = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
        let row = sqlx::query(
            "SELECT COUNT(*) FROM survey_outbox
             WHERE state IN ('sent', 'sending') AND sent_at >= $1 AND sent_at < $2",
        )
        .bind(timestamp(start))
        .bind(timestamp(start + TimeDelta::days(1)))
        .fetch_one(self.pool())
        .await
        .context("failed to count today's survey emails")?;
        Ok(u32::try_from(row.get::<i64, _>(0)).unwrap_or(u32::MAX))
    }

    /// Emails still waiting whose grace period ended become `skipped`.
    pub async fn close_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let result = sqlx::query(
            "UPDATE survey_outbox SET state = 'skipped', updated_at = $2,
                 reason = 'the grace period ended before it could be sent'
             WHERE state IN ('planned', 'deferred', 'failed_transient') AND closes_at <= $1",
        )
        .bind(timestamp(now))
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await
        .context("failed to close expired survey emails")?;
        Ok(result.rows_affected())
    }

    /// Records a run's plan: emails to send as `planned`, over-budget ones as `deferred`,
    /// missed ones as `skipped`. A row already sent, sending or final is never touched.
    /// Returns the keys that could not be recorded, with why (they are not sent).
    pub async fn record_plan(
        &self,
        run_id: &str,
        send: &[Email],
        deferred: &[Email],
        skipped: &[(Email, String)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut failures = Vec::new();
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("failed to start a transaction")?;
        let rows = send
            .iter()
            .map(|e| (e, State::Planned, None))
            .chain(deferred.iter().map(|e| (e, State::Deferred, None)))
            .chain(
                skipped
                    .iter()
                    .map(|(e, why)| (e, State::Skipped, Some(why.as_str()))),
            );
        for (email, state, reason) in rows {
            if let Err(e) = upsert(&mut tx, run_id, email, state, reason, now).await {
                tracing::warn!(outbox.key = %email.key, "could not record a survey email: {e:#}");
                failures.push((email.key.clone(), format!("{e:#}")));
            }
        }
        tx.commit()
            .await
            .context("failed to commit the survey plan")?;
        Ok(failures)
    }

    /// Moves a planned email to `sending`, committed before the send, and returns its attempt
    /// number; `None` when it is not `planned` (another run took it, or it was recorded
    /// otherwise).
    pub async fn begin_send(
        &self,
        key: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<u32>> {
        let row = sqlx::query(
            "UPDATE survey_outbox SET state = 'sending', message_id = $2, sent_at = $3,
                 attempts = attempts + 1, updated_at = $4
             WHERE key = $1 AND state = 'planned'
             RETURNING attempts",
        )
        .bind(key)
        .bind(message_id)
        .bind(timestamp(now))
        .bind(timestamp(Utc::now()))
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to mark survey email {key} as sending"))?;
        Ok(row.map(|r| u32::try_from(r.get::<i64, _>(0)).unwrap_or(u32::MAX)))
    }

    /// Records how a send attempt ended.
    pub async fn finish_send(&self, key: &str, attempt: &Attempt) -> anyhow::Result<()> {
        let (state, error, retry_at) = match attempt {
            Attempt::Sent => (State::Sent, None, None),
            Attempt::Transient {
                error,
                retry_at: Some(at),
            } => (
                State::FailedTransient,
                Some(error.as_str()),
                Some(timestamp(*at)),
            ),
            Attempt::Transient {
                error,
                retry_at: None,
            }
            | Attempt::Permanent { error } => (State::FailedPermanent, Some(error.as_str()), None),
        };
        sqlx::query(
            "UPDATE survey_outbox SET state = $2, last_error = $3, next_attempt_at = $4,
                 sent_at = CASE WHEN $2 = 'sent' THEN sent_at ELSE NULL END, updated_at = $5
             WHERE key = $1 AND state = 'sending'",
        )
        .bind(key)
        .bind(state.as_str())
        .bind(error)
        .bind(retry_at)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to record the send of survey email {key}"))?;
        Ok(())
    }

    /// Marks a planned email skipped (its message could not even be built).
    pub async fn skip_email(&self, key: &str, reason: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE survey_outbox SET state = 'skipped', reason = $2, updated_at = $3
             WHERE key = $1 AND state IN ('planned', 'deferred', 'failed_transient')",
        )
        .bind(key)
        .bind(reason)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to skip survey email {key}"))?;
        Ok(())
    }

    /// Adds an address to the suppression list (unsubscribed, hard bounce); the first reason
    /// stays.
    pub async fn suppress(
        &self,
        address: &str,
        reason: &str,
        key: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO survey_suppressions (address, reason, outbox_key, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO NOTHING",
        )
        .bind(address)
        .bind(reason)
        .bind(key)
        .bind(timestamp(now))
        .execute(self.pool())
        .await
        .context("failed to suppress an address")?;
        Ok(())
    }

    /// How many outbox rows are in `state` now.
    pub async fn outbox_count(&self, state: State) -> anyhow::Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM survey_outbox WHERE state = $1")
            .bind(state.as_str())
            .fetch_one(self.pool())
            .await
            .with_context(|| format!("failed to count {} survey emails", state.as_str()))?;
        Ok(u64::try_from(row.get::<i64, _>(0)).unwrap_or(0))
    }

    /// Outbox rows in the given states (all when empty), newest first.
    pub async fn outbox(&self, states: &[State]) -> anyhow::Result<Vec<OutboxRow>> {
        // The states are filtered by the database: a large book's outbox holds a row for every
        // contact and wave, and a cycle only asks for the few rows left in `sending`.
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT key, survey, wave, account_id, account_name, contact_id, recipient, state,
                    reason, attempts,
                    next_attempt_at, last_error, message_id, sent_at, updated_at
             FROM survey_outbox",
        );
        if !states.is_empty() {
            query.push(" WHERE state IN (");
            let mut list = query.separated(", ");
            for state in states {
                list.push_bind(state.as_str());
            }
            query.push(")");
        }
        query.push(" ORDER BY updated_at DESC, key");
        let rows = query
            .build()
            .fetch_all(self.pool())
            .await
            .context("failed to read the survey outbox")?;
        Ok(rows.iter().map(outbox_row).collect())
    }

    /// One outbox row by key.
    pub async fn outbox_row(&self, key: &str) -> anyhow::Result<Option<OutboxRow>> {
        let row = sqlx::query(
            "SELECT key, survey, wave, account_id, account_name, contact_id, recipient, state,
                    reason, attempts,
                    next_attempt_at, last_error, message_id, sent_at, updated_at
             FROM survey_outbox WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to read survey email {key}"))?;
        Ok(row.as_ref().map(outbox_row))
    }

    /// Settles one email as an operator asks: a row left in `sending` as sent, retried or
    /// skipped, or a `failed_permanent` row retried once the cause (a relay that refused us,
    /// say) is fixed. A retry is refused once the wave's grace period has ended (`now` is
    /// past its `closes_at`) and while the address is suppressed; nothing else changes then.
    pub async fn resolve(
        &self,
        key: &str,
        resolution: Resolution,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Settled> {
        let (state, reason) = match resolution {
            Resolution::Sent => ("sent", "an operator confirmed it was sent"),
            Resolution::Retry => ("planned", "an operator asked for it to be sent again"),
            Resolution::Skipped => ("skipped", "an operator skipped it"),
        };
        let retry = resolution == Resolution::Retry;
        let result = sqlx::query(
            "UPDATE survey_outbox SET state = $2, reason = $3, updated_at = $4,
                 sent_at = CASE WHEN $2 = 'sent' THEN sent_at ELSE NULL END,
                 next_attempt_at = CASE WHEN $2 = 'sent' THEN next_attempt_at ELSE NULL END,
                 attempts = CASE WHEN state = 'failed_permanent' THEN 0 ELSE attempts END
             WHERE key = $1
               AND (state = 'sending' OR ($6 AND state = 'failed_permanent'))
               AND (NOT $6 OR (closes_at > $5
                    AND recipient NOT IN (SELECT address FROM survey_suppressions)))",
        )
        .bind(key)
        .bind(state)
        .bind(reason)
        .bind(timestamp(Utc::now()))
        .bind(timestamp(now))
        .bind(retry)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to resolve survey email {key}"))?;
        if result.rows_affected() == 1 {
            return Ok(Settled::Done);
        }
        self.why_unsettled(key, retry, now).await
    }

    /// Why [`Store::resolve`] changed nothing for `key`: for a retry, the grace period or a
    /// suppression may be why; otherwise only the email's state is.
    async fn why_unsettled(
        &self,
        key: &str,
        retry: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Settled> {
        let row: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT o.state, o.closes_at, s.reason FROM survey_outbox o
             LEFT JOIN survey_suppressions s ON s.address = o.recipient WHERE o.key = $1",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to read survey email {key}"))?;
        let Some((state, closes_at, suppressed)) = row else {
            return Ok(Settled::Unknown);
        };
        let retryable = retry
            && matches!(
                State::parse(&state),
                Some(State::Sending | State::FailedPermanent)
            );
        let closed = parse_time(Some(closes_at.clone())).is_some_and(|at| at <= now);
        let settled = match suppressed {
            _ if retryable && closed => Settled::Closed { closes_at },
            Some(reason) if retryable => Settled::Suppressed { reason },
            _ => Settled::WrongState { state },
        };
        Ok(settled)
    }

    /// Sends every `failed_permanent` email again (of one wave, when `wave` names one) whose
    /// grace period is still open at `now` and whose address is not suppressed: what an
    /// operator runs after fixing a relay that refused every email. Each row gets a fresh
    /// attempt budget, and goes out with the next cycle like any planned email.
    pub async fn retry_failed(
        &self,
        wave: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RetryReport> {
        let retried = sqlx::query(
            "UPDATE survey_outbox SET state = 'planned', attempts = 0, next_attempt_at = NULL,
                 sent_at = NULL, updated_at = $3,
                 reason = 'an operator asked for it to be sent again after a permanent failure'
             WHERE state = 'failed_permanent' AND ($1 IS NULL OR wave = $1) AND closes_at > $2
               AND recipient NOT IN (SELECT address FROM survey_suppressions)",
        )
        .bind(wave)
        .bind(timestamp(now))
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await
        .context("failed to retry the permanently failed survey emails")?
        .rows_affected();
        let (closed, suppressed): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(closes_at <= $2), 0), COALESCE(SUM(closes_at > $2), 0)
             FROM survey_outbox WHERE state = 'failed_permanent' AND ($1 IS NULL OR wave = $1)",
        )
        .bind(wave)
        .bind(timestamp(now))
        .fetch_one(self.pool())
        .await
        .context("failed to count the permanently failed survey emails left")?;
        Ok(RetryReport {
            retried,
            closed: u64::try_from(closed).unwrap_or(0),
            suppressed: u64::try_from(suppressed).unwrap_or(0),
        })
    }

    /// When each account was last sent a goal survey (sent rows only), for ROI.
    pub async fn goal_surveys_sent(&self) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT account_id, sent_at FROM survey_outbox
             WHERE survey = 'goal' AND state = 'sent' AND sent_at IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the goal surveys sent")?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get("account_id"), parse_time(r.get("sent_at"))?)))
            .collect())
    }
}

async fn upsert(
    tx: &mut sqlx::SqliteConnection,
    run_id: &str,
    email: &Email,
    state: State,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO survey_outbox (key, person_wave, survey, wave, account_id, account_name,
             contact_id, recipient, display_name, zone, due_on, closes_at, state, reason, run_id,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)
         ON CONFLICT (key) DO UPDATE SET state = excluded.state, reason = excluded.reason,
             recipient = excluded.recipient, display_name = excluded.display_name,
             account_name = excluded.account_name, zone = excluded.zone,
             run_id = excluded.run_id, updated_at = excluded.updated_at
         WHERE survey_outbox.state IN ('planned', 'deferred', 'failed_transient')",
    )
    .bind(&email.key)
    .bind(&email.person_wave)
    .bind(email.survey.as_str())
    .bind(&email.wave)
    .bind(&email.account_id)
    .bind(&email.account_name)
    .bind(&email.contact_id)
    .bind(&email.recipient)
    .bind(&email.display_name)
    .bind(&email.zone)
    .bind(email.due_on.to_string())
    .bind(timestamp(email.closes_at))
    .bind(state.as_str())
    .bind(reason)
    .bind(run_id)
    .bind(timestamp(now))
    .execute(&mut *tx)
    .await
    .with_context(|| format!("failed to record survey email {}", email.key))?;
    Ok(())
}

fn outbox_row(row: &sqlx::sqlite::SqliteRow) -> OutboxRow {
    OutboxRow {
        key: row.get("key"),
        survey: row.get("survey"),
        wave: row.get("wave"),
        account_id: row.get("account_id"),
        account_name: row.get("account_name"),
        contact_id: row.get("contact_id"),
        recipient: row.get("recipient"),
        state: row.get("state"),
        reason: row.get("reason"),
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        message_id: row.get("message_id"),
        sent_at: row.get("sent_at"),
        updated_at: row.get("updated_at"),
    }
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}
