//! The task ledger in the store: what touchpoint decided, what the CRM confirmed, what a CSM
//! closed.
//!
//! A task is recorded as `pending` *before* it is written to the CRM, under the key the CRM
//! will know it by. A crash between the CRM creating it and the ledger hearing back therefore
//! leaves a pending row, and the next cycle sends the same key again: the CRM answers with the
//! existing task instead of creating a second one.
//!
//! Statuses: `pending` (decided, not yet confirmed by the CRM), `open`, `completed` and
//! `canceled` (as the CRM reports them), and `conflict` (the CRM holds this key for another
//! account or kind: a person must look; it is never retried).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rules::{History, Reason, TaskDraft};
use crate::store::{Store, timestamp};

/// Rows per multi-row insert: well under SQLite's limit on bound values (14 per task).
const ROWS_PER_STATEMENT: usize = 100;

/// Statuses that count as "a task is open for this account and reason".
const LIVE: [&str; 2] = ["pending", "open"];

/// The flag the mass-change breaker sets while it holds health-driven tasks.
pub const BREAKER_FLAG: &str = "tasks.breaker";
/// The `updated_at` up to which the CRM's task list has been reconciled.
const RECONCILED_FLAG: &str = "tasks.reconciled_until";

/// A task as the ledger holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerTask {
    pub key: String,
    pub account_id: String,
    pub reason: String,
    pub kind: String,
    pub status: String,
    pub owner_id: String,
    pub priority: String,
    pub due_date: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A task the CRM answered for: its key, the CRM's id and status.
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub key: String,
    pub crm_id: Option<String>,
    pub crm_status: String,
}

impl Store {
    /// Every (account, reason) the ledger knows, with its open task and last closing.
    pub async fn task_histories(&self) -> anyhow::Result<HashMap<(String, Reason), History>> {
        let rows = sqlx::query(
            "SELECT key, account_id, reason, status, created_at, opened_at, closed_at FROM tasks",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the task ledger")?;

        let mut histories: HashMap<(String, Reason), History> = HashMap::new();
        for row in rows {
            let Some(reason) = Reason::parse(row.get("reason")) else {
                continue;
            };
            let history = histories
                .entry((row.get("account_id"), reason))
                .or_default();
            let status: String = row.get("status");
            if LIVE.contains(&status.as_str()) {
                history.open_key = Some(row.get("key"));
            }
            let opened = parse_time(row.get("opened_at")).or(parse_time(row.get("created_at")));
            history.last_opened_at = history.last_opened_at.max(opened);
            history.last_closed_at = history.last_closed_at.max(parse_time(row.get("closed_at")));
        }
        Ok(histories)
    }

    /// Answer triggers already decided (opened or skipped for good).
    pub async fn decided_triggers(&self) -> anyhow::Result<HashSet<String>> {
        let rows = sqlx::query("SELECT trigger_id FROM task_triggers")
            .fetch_all(self.pool())
            .await
            .context("failed to read decided task triggers")?;
        Ok(rows.iter().map(|r| r.get("trigger_id")).collect())
    }

    /// Records decided tasks as pending, and answer triggers as decided, in one transaction.
    pub async fn record_decisions(
        &self,
        run_id: &str,
        drafts: &[TaskDraft],
        decided: &[(String, String, Option<String>)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let now = timestamp(now);
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("failed to start a transaction")?;
        for group in drafts.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tasks (key, account_id, reason, kind, status, owner_id, priority, \
                 due_date, subject, body, trigger_id, run_id, created_at, updated_at) ",
            );
            insert.push_values(group, |mut row, draft| {
                row.push_bind(&draft.key)
                    .push_bind(&draft.account_id)
                    .push_bind(draft.reason.as_str())
                    .push_bind(draft.kind)
                    .push_bind("pending")
                    .push_bind(&draft.owner_id)
                    .push_bind(draft.priority.as_str())
                    .push_bind(draft.due_date.to_string())
                    .push_bind(&draft.subject)
                    .push_bind(&draft.body)
                    .push_bind(&draft.trigger_id)
                    .push_bind(run_id)
                    .push_bind(&now)
                    .push_bind(&now);
            });
            insert.push(" ON CONFLICT (key) DO NOTHING");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .with_context(|| format!("failed to record tasks from {}", group[0].key))?;
        }
        for group in decided.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO task_triggers (trigger_id, outcome, task_key, decided_at) ",
            );
            insert.push_values(group, |mut row, (trigger_id, outcome, key)| {
                row.push_bind(trigger_id)
                    .push_bind(outcome)
                    .push_bind(key)
                    .push_bind(&now);
            });
            insert.push(" ON CONFLICT (trigger_id) DO NOTHING");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .with_context(|| format!("failed to record triggers from {}", group[0].0))?;
        }
        tx.commit()
            .await
            .context("failed to commit task decisions")?;
        Ok(())
    }

    /// Tasks decided but not yet confirmed by the CRM, oldest first.
    pub async fn pending_tasks(&self) -> anyhow::Result<Vec<LedgerTask>> {
        let rows = sqlx::query(
            "SELECT key, account_id, reason, kind, status, owner_id, priority, due_date, subject,
                    body, attempts, last_error
             FROM tasks WHERE status = 'pending' ORDER BY created_at, key",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read pending tasks")?;
        Ok(rows.iter().map(ledger_task).collect())
    }

    /// Every task in the ledger, newest first.
    pub async fn all_tasks(&self) -> anyhow::Result<Vec<LedgerTask>> {
        let rows = sqlx::query(
            "SELECT key, account_id, reason, kind, status, owner_id, priority, due_date, subject,
                    body, attempts, last_error
             FROM tasks ORDER BY created_at DESC, key",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the task ledger")?;
        Ok(rows.iter().map(ledger_task).collect())
    }

    /// The CRM confirmed the task (created it, or already had it under this key).
    pub async fn task_confirmed(
        &self,
        key: &str,
        crm_id: Option<&str>,
        crm_status: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let confirmed = Confirmed {
            key: key.to_owned(),
            crm_id: crm_id.map(str::to_owned),
            crm_status: crm_status.to_owned(),
        };
        self.tasks_confirmed(std::slice::from_ref(&confirmed), now)
            .await
    }

    /// Records what the CRM answered for several tasks, in one transaction.
    pub async fn tasks_confirmed(
        &self,
        confirmed: &[Confirmed],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let now = timestamp(now);
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("failed to start a transaction")?;
        for task in confirmed {
            let closed = (task.crm_status != "open").then(|| now.clone());
            sqlx::query(
                "UPDATE tasks SET status = $2, crm_id = $3, opened_at = COALESCE(opened_at, $4),
                     closed_at = COALESCE(closed_at, $5), updated_at = $4,
                     attempts = attempts + 1, last_error = NULL
                 WHERE key = $1",
            )
            .bind(&task.key)
            .bind(&task.crm_status)
            .bind(&task.crm_id)
            .bind(&now)
            .bind(closed)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("failed to confirm task {}", task.key))?;
        }
        tx.commit()
            .await
            .context("failed to commit confirmed tasks")
    }

    /// A write failed: `conflict` ends the task's attempts, anything else keeps it pending.
    pub async fn task_failed(
        &self,
        key: &str,
        conflict: bool,
        error: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let status = if conflict { "conflict" } else { "pending" };
        sqlx::query(
            "UPDATE tasks SET status = $2, last_error = $3, attempts = attempts + 1,
                 updated_at = $4 WHERE key = $1",
        )
        .bind(key)
        .bind(status)
        .bind(error)
        .bind(timestamp(now))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to record the failure of task {key}"))?;
        Ok(())
    }

    /// Applies a status the CRM reports for a task (a CSM completed or canceled it).
    pub async fn task_status_from_crm(
        &self,
        key: &str,
        status: &str,
        updated_at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let closed = (status != "open").then(|| timestamp(updated_at));
        let result = sqlx::query(
            "UPDATE tasks SET status = $2, closed_at = $3, updated_at = $4
             WHERE key = $1 AND status <> 'conflict' AND status <> $2",
        )
        .bind(key)
        .bind(status)
        .bind(closed)
        .bind(timestamp(updated_at))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to reconcile task {key}"))?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn flag(&self, name: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM flags WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("failed to read flag {name}"))?;
        Ok(row.map(|r| r.get("value")))
    }

    pub async fn set_flag(&self, name: &str, value: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO flags (name, value, set_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
        )
        .bind(name)
        .bind(value)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to set flag {name}"))?;
        Ok(())
    }

    /// Clears a flag; says whether it was set.
    pub async fn clear_flag(&self, name: &str) -> anyhow::Result<bool> {
        let result = sqlx::query("DELETE FROM flags WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .with_context(|| format!("failed to clear flag {name}"))?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn reconciled_until(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(parse_time(self.flag(RECONCILED_FLAG).await?))
    }

    pub async fn set_reconciled_until(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.set_flag(RECONCILED_FLAG, &timestamp(at)).await
    }
}

fn ledger_task(row: &sqlx::sqlite::SqliteRow) -> LedgerTask {
    LedgerTask {
        key: row.get("key"),
        account_id: row.get("account_id"),
        reason: row.get("reason"),
        kind: row.get("kind"),
        status: row.get("status"),
        owner_id: row.get("owner_id"),
        priority: row.get("priority"),
        due_date: row.get("due_date"),
        subject: row.get("subject"),
        body: row.get("body"),
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
    }
}
