//! Run history: what `touchpoint runs`, `/readyz` and `/metrics` read back from the `runs`
//! table (and the rejected records of a run).
//!
//! Cycles write their own rows (see [`crate::store`]); this module only reads them, plus one
//! repair: a daemon that died mid-run leaves its run `running`, and the instance that takes
//! the scheduler over marks it `interrupted` so the history tells the truth.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::store::{Store, timestamp};
use crate::surveys::outbox::State;

/// A `SELECT` of every column a [`RunRecord`] needs, followed by the rest of the query.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, command, started_at, finished_at, as_of, status, reason, source,
                    accounts_pulled, summary FROM runs ",
            $rest
        )
    };
}

/// One row of the run history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub as_of: String,
    pub status: String,
    pub reason: Option<String>,
    pub source: String,
    pub accounts_pulled: Option<i64>,
    /// The counts the cycle recorded (scored, changed, written, tasks…), as JSON.
    pub summary: serde_json::Value,
}

impl RunRecord {
    /// A count from the summary, if the run recorded it.
    pub fn count(&self, name: &str) -> Option<u64> {
        self.summary.get(name).and_then(serde_json::Value::as_u64)
    }
}

/// A record a run rejected, with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct RejectionRecord {
    pub dataset: String,
    pub record_id: Option<String>,
    pub account_id: Option<String>,
    pub reason: String,
}

/// What `/metrics` reports about the book, the last cycles and the survey outbox.
#[derive(Debug, Clone, Default)]
pub struct BookGauges {
    /// Accounts per band of their latest score.
    pub bands: HashMap<String, i64>,
    /// Survey emails waiting over a budget (`deferred` in the outbox) now.
    pub emails_deferred: u64,
    pub last_cycle_ok: bool,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn run_record(row: &SqliteRow) -> RunRecord {
    let started_at = parse_time(row.get("started_at")).unwrap_or_default();
    let finished_at = parse_time(row.get("finished_at"));
    let summary: Option<String> = row.get("summary");
    RunRecord {
        id: row.get("id"),
        command: row.get("command"),
        started_at,
        finished_at,
        duration_ms: finished_at.map(|end| (end - started_at).num_milliseconds()),
        as_of: row.get("as_of"),
        status: row.get("status"),
        reason: row.get("reason"),
        source: row.get("source"),
        accounts_pulled: row.get("accounts_pulled"),
        summary: summary
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(serde_json::Value::Null),
    }
}

impl Store {
    /// The latest `limit` runs, newest first.
    pub async fn recent_runs(&self, limit: u32) -> anyhow::Result<Vec<RunRecord>> {
        let sql = select_runs!("ORDER BY started_at DESC, id DESC LIMIT $1");
        let rows = sqlx::query(sql)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .context("failed to read the run history")?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub async fn run_record(&self, run_id: &str) -> anyhow::Result<Option<RunRecord>> {
        let row = sqlx::query(select_runs!("WHERE id = $1"))
            .bind(run_id)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("failed to read run {run_id}"))?;
        Ok(row.as_ref().map(run_record))
    }

    /// The records a run rejected, in the order it met them.
    pub async fn run_rejections(&self, run_id: &str) -> anyhow::Result<Vec<RejectionRecord>> {
        let rows = sqlx::query(
            "SELECT dataset, record_id, account_id, reason FROM run_rejections
             WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .with_context(|| format!("failed to read the rejected records of run {run_id}"))?;
        Ok(rows
            .iter()
            .map(|row| RejectionRecord {
                dataset: row.get("dataset"),
                record_id: row.get("record_id"),
                account_id: row.get("account_id"),
                reason: row.get("reason"),
            })
            .collect())
    }

    /// The latest run that ended on its own: succeeded, partial or failed (not running, and
    /// not interrupted).
    pub async fn last_finished_run(&self) -> anyhow::Result<Option<RunRecord>> {
        let sql = select_runs!(
            "WHERE status IN ('succeeded', 'partial', 'failed')
             ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        self.one_run(sql).await
    }

    /// The latest run that scored the book (succeeded or partial).
    pub async fn last_successful_run(&self) -> anyhow::Result<Option<RunRecord>> {
        let sql = select_runs!(
            "WHERE status IN ('succeeded', 'partial') ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        self.one_run(sql).await
    }

    async fn one_run(&self, sql: &'static str) -> anyhow::Result<Option<RunRecord>> {
        let row = sqlx::query(sql)
            .fetch_optional(self.pool())
            .await
            .context("failed to read the latest run")?;
        Ok(row.as_ref().map(run_record))
    }

    /// Counts accounts by band and deferred emails, and reads the last cycles, for `/metrics`.
    pub async fn book_gauges(&self) -> anyhow::Result<BookGauges> {
        let rows = sqlx::query("SELECT band, COUNT(*) AS n FROM account_scores GROUP BY band")
            .fetch_all(self.pool())
            .await
            .context("failed to count accounts by band")?;
        let bands = rows
            .iter()
            .map(|row| (row.get::<String, _>("band"), row.get::<i64, _>("n")))
            .collect();
        let last = self.last_finished_run().await?;
        let success = self.last_successful_run().await?;
        let emails_deferred = self.outbox_count(State::Deferred).await?;
        Ok(BookGauges {
            bands,
            emails_deferred,
            last_cycle_ok: last.as_ref().is_some_and(|run| run.status != "failed"),
            last_finished_at: last.and_then(|run| run.finished_at),
            last_success_at: success.and_then(|run| run.finished_at),
        })
    }

    /// Marks the unfinished runs of the commands that hold the scheduler lease while they run
    /// (the daemon's `run` and a one-shot `cycle`) as interrupted; returns how many there were.
    ///
    /// Only the new holder of the scheduler lease calls this: while it holds the lease no
    /// other live process can be in the middle of such a run. When the process running one
    /// died is not known (only that it stopped renewing the lease), so the run gets no end
    /// time: the reason says when it was found and marked, as that time and no more.
    pub async fn interrupt_unfinished_runs(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let reason = format!(
            "the process running it stopped before it finished, at a time not known; marked \
             interrupted at {} by the instance that took the scheduler over",
            timestamp(now)
        );
        let result = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = NULL, reason = $2
             WHERE status = 'running' AND command IN ($1, $3)",
        )
        .bind(crate::daemon::jobs::RUN_COMMAND)
        .bind(reason)
        .bind(crate::daemon::jobs::CYCLE_COMMAND)
        .execute(self.pool())
        .await
        .context("failed to mark unfinished runs as interrupted")?;
        Ok(result.rows_affected())
    }
}
